//! The on-disk secret store: generate once, keep 0600, never print.

use crate::fs::write_atomic;
use flatcar_topology::provision::SecretStore;
use flatcar_topology::{Error as TopologyError, Name, Secret};
use std::path::{Path, PathBuf};

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

/// The store's failure for secret `name`: the path and the OS error, typed.
fn store_error(name: &str, path: &Path, source: std::io::Error) -> TopologyError {
    TopologyError::SecretStore {
        name: name.to_string(),
        source: Box::new(crate::Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl SecretStore for DirSecrets {
    fn get_or_create(
        &mut self,
        name: &str,
        generate: &dyn Fn() -> Result<Secret, TopologyError>,
    ) -> Result<Secret, TopologyError> {
        Name::new(name).map_err(|source| TopologyError::SecretName {
            name: name.to_string(),
            source,
        })?;
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => return Ok(Secret::new(s.trim_end_matches('\n'))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(store_error(name, &path, e)),
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| store_error(name, &self.dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| store_error(name, &self.dir, e))?;
        }
        let s = generate()?;
        write_atomic(&path, format!("{}\n", s.expose()).as_bytes(), 0o600)
            .map_err(|e| store_error(name, &path, e))?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flatcar_topology::provision::random_hex;

    #[test]
    fn dir_store_persists_0600() {
        let dir = std::env::temp_dir().join(format!("fmc-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = DirSecrets::new(&dir);
        let a = s
            .get_or_create("k3s-token", &|| random_hex(32))
            .expect("generates");
        let b = DirSecrets::new(&dir)
            .get_or_create("k3s-token", &|| random_hex(32))
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
        let e = s
            .get_or_create("../x", &|| random_hex(1))
            .expect_err("bad name");
        assert!(!e.to_string().contains('\n'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
