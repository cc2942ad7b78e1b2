//! Secret stores: generate once, keep, never print.

use crate::{Error, Secret, SecretId};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where generated secrets live between runs.
pub trait SecretStore {
    /// The secret `id`; generated with `generate` and stored if absent.
    fn get_or_create(
        &mut self,
        id: &SecretId,
        generate: &dyn Fn() -> Result<Secret, Error>,
    ) -> Result<Secret, Error>;
}

/// An in-memory store (tests, one-shot renders).
#[derive(Debug, Default)]
pub struct MemorySecrets(BTreeMap<SecretId, Secret>);

impl SecretStore for MemorySecrets {
    fn get_or_create(
        &mut self,
        id: &SecretId,
        generate: &dyn Fn() -> Result<Secret, Error>,
    ) -> Result<Secret, Error> {
        if let Some(s) = self.0.get(id) {
            return Ok(s.clone());
        }
        let s = generate()?;
        self.0.insert(id.clone(), s.clone());
        Ok(s)
    }
}

/// A directory of 0600 files, one per secret, in a 0700 directory.
#[derive(Debug, Clone)]
pub struct DirSecrets {
    dir: PathBuf,
}

impl DirSecrets {
    /// A store at `dir` (created 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSecrets { dir: dir.into() }
    }
}

impl SecretStore for DirSecrets {
    fn get_or_create(
        &mut self,
        id: &SecretId,
        generate: &dyn Fn() -> Result<Secret, Error>,
    ) -> Result<Secret, Error> {
        let err = |message: String| Error::Secret {
            name: id.file_name(),
            message,
        };
        let path = self.dir.join(id.file_name());
        let legacy = id.legacy_file_name().map(|n| self.dir.join(n));
        for p in std::iter::once(&path).chain(legacy.as_ref()) {
            match std::fs::read_to_string(p) {
                Ok(s) => return Ok(Secret::new(s.trim_end_matches('\n'))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(format!("cannot read {}: {e}", p.display()))),
            }
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| err(format!("cannot create {}: {e}", self.dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| err(format!("cannot chmod {}: {e}", self.dir.display())))?;
        }
        let s = generate()?;
        crate::fsutil::write_atomic(&path, format!("{}\n", s.expose()).as_bytes(), 0o600)?;
        Ok(s)
    }
}

/// `bytes` random bytes from the OS, hex-encoded, as a secret.
pub fn random_hex(bytes: usize) -> Result<Secret, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| Error::Secret {
        name: "random".into(),
        message: e.to_string(),
    })?;
    Ok(Secret::new(
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_store_persists_0600() {
        let dir = std::env::temp_dir().join(format!("fmc-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = DirSecrets::new(&dir);
        let a = s
            .get_or_create(&SecretId::K3sToken, &|| random_hex(32))
            .expect("generates");
        let b = DirSecrets::new(&dir)
            .get_or_create(&SecretId::K3sToken, &|| random_hex(32))
            .expect("reads");
        assert_eq!(a, b);
        assert_eq!(a.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(dir.join("k3s-token"))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600);
        }
        assert!(SecretId::service("x", "../x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
