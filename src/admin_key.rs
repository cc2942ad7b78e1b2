//! The admin SSH key pair the example generates when the user gives none:
//! an ed25519 key in OpenSSH's own private-key format (unencrypted, as
//! `ssh-keygen -N ''` writes it), kept as the bundle secret
//! [`SECRET_NAME`] (`secrets/admin-ssh-ed25519`, 0600), so a new user can
//! `ssh -i out/secrets/admin-ssh-ed25519 core@<vm>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use flatcar_topology::provision::SecretStore;
use flatcar_topology::{Error, Secret, SshKey};

/// Name of the private key in the secret store (and under `secrets/`).
pub const SECRET_NAME: &str = "admin-ssh-ed25519";
const KIND: &str = "ssh-ed25519";
const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn public_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut b = Vec::new();
    put(&mut b, KIND.as_bytes());
    put(&mut b, public);
    b
}

fn key_error(message: &str) -> Error {
    Error::SecretStore {
        name: SECRET_NAME.into(),
        source: message.into(),
    }
}

/// The OpenSSH private key file for `seed` (no passphrase).
fn private_pem(seed: &[u8; 32], check: u32, comment: &str) -> String {
    let public = ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes();
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put(&mut private, KIND.as_bytes());
    put(&mut private, &public);
    let mut pair = seed.to_vec();
    pair.extend_from_slice(&public);
    put(&mut private, &pair);
    put(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut body = MAGIC.to_vec();
    put(&mut body, b"none");
    put(&mut body, b"none");
    put(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    put(&mut body, &public_blob(&public));
    put(&mut body, &private);
    let b64 = STANDARD.encode(body);
    let mut pem = String::from(BEGIN);
    pem.push('\n');
    for chunk in b64.as_bytes().chunks(70) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(END);
    // OpenSSH refuses a key file without its final newline ("error in
    // libcrypto"), as `ssh-keygen` writes it.
    pem.push('\n');
    pem
}

/// Reads the seed and comment back from a key [`private_pem`] wrote.
fn parse(pem: &str) -> Option<([u8; 32], String)> {
    let b64: String = pem
        .lines()
        .skip_while(|l| l.trim() != BEGIN)
        .skip(1)
        .take_while(|l| l.trim() != END)
        .collect();
    let body = STANDARD.decode(b64.trim()).ok()?;
    let mut rest = body.strip_prefix(MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = rest.split_at_checked(n)?;
        rest = b;
        Some(a)
    };
    let mut fields = Vec::new();
    for _ in 0..3 {
        let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        fields.push(take(len)?.to_vec());
    }
    if fields[0] != b"none" {
        return None; // encrypted keys are the user's own: not ours to read
    }
    let _count = take(4)?;
    let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let _public = take(len)?;
    let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
    let private = take(len)?.to_vec();
    let mut p = private.as_slice();
    let mut next = |n: usize| -> Option<Vec<u8>> {
        let (a, b) = p.split_at_checked(n)?;
        p = b;
        Some(a.to_vec())
    };
    let _checks = next(8)?;
    let mut field = || -> Option<Vec<u8>> {
        let len = u32::from_be_bytes(next(4)?.try_into().ok()?) as usize;
        next(len)
    };
    let kind = field()?;
    let _pk = field()?;
    let pair = field()?;
    let comment = field()?;
    if kind != KIND.as_bytes() || pair.len() != 64 {
        return None;
    }
    let seed: [u8; 32] = pair[..32].try_into().ok()?;
    Some((seed, String::from_utf8(comment).ok()?))
}

/// The `authorized_keys` line of a private key written by this module.
pub fn public_key(private: &Secret) -> Result<SshKey, Error> {
    let (seed, comment) = parse(private.expose())
        .ok_or_else(|| key_error("not an unencrypted OpenSSH ed25519 key"))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    SshKey::new(format!(
        "{KIND} {} {comment}",
        STANDARD.encode(public_blob(&public))
    ))
    .map_err(|_| key_error("derived public key is not a valid key line"))
}

/// Generates a new key pair (the private key file as a secret).
pub fn generate(comment: &str) -> Result<Secret, Error> {
    let mut seed = [0u8; 32];
    let mut check = [0u8; 4];
    getrandom::getrandom(&mut seed).map_err(Error::Random)?;
    getrandom::getrandom(&mut check).map_err(Error::Random)?;
    Ok(Secret::new(private_pem(
        &seed,
        u32::from_be_bytes(check),
        comment,
    )))
}

/// The admin key from `secrets` (reused on every run), generated the first
/// time; returns its public key line for the model.
pub fn load_or_generate(secrets: &mut dyn SecretStore, comment: &str) -> Result<SshKey, Error> {
    let comment = comment.to_string();
    let private = secrets.get_or_create(&flatcar_topology::SecretId::AdminSshKey, &|| {
        generate(&comment)
    })?;
    public_key(&private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic_for_a_seed() {
        let pem = private_pem(&[7u8; 32], 42, "admin@microcloud");
        assert!(pem.starts_with(BEGIN) && pem.ends_with(&format!("{END}\n")));
        assert_eq!(pem, private_pem(&[7u8; 32], 42, "admin@microcloud"));
        let key = public_key(&Secret::new(pem)).expect("parses");
        assert!(key
            .as_str()
            .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        assert!(key.as_str().ends_with(" admin@microcloud"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate("a").expect("key");
        let b = generate("a").expect("key");
        assert_ne!(a.expose(), b.expose());
        assert!(public_key(&a).is_ok());
    }
}
