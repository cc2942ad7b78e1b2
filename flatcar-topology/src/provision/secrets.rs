//! Secret stores: generate once, keep, never print. The in-memory store
//! lives here; the on-disk store (`DirSecrets`) is in `flatcar-ignition`.

use crate::{Error, Secret};
use std::collections::BTreeMap;

/// Where generated secrets live between runs.
pub trait SecretStore {
    /// The secret `name`; generated with `generate` and stored if absent.
    fn get_or_create(
        &mut self,
        name: &str,
        generate: &dyn Fn() -> Result<Secret, Error>,
    ) -> Result<Secret, Error>;
}

/// An in-memory store (tests, one-shot renders).
#[derive(Debug, Default)]
pub struct MemorySecrets(BTreeMap<String, Secret>);

impl SecretStore for MemorySecrets {
    fn get_or_create(
        &mut self,
        name: &str,
        generate: &dyn Fn() -> Result<Secret, Error>,
    ) -> Result<Secret, Error> {
        if let Some(s) = self.0.get(name) {
            return Ok(s.clone());
        }
        let s = generate()?;
        self.0.insert(name.into(), s.clone());
        Ok(s)
    }
}

/// `bytes` random bytes from the OS, hex-encoded, as a secret.
pub fn random_hex(bytes: usize) -> Result<Secret, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(Error::Random)?;
    Ok(Secret::new(
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}
