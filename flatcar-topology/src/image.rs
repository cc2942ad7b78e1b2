//! Container image references, pinned by digest.

/// Why a text is not a pinned container image reference (the text is shown
/// escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} is not an image reference pinned by digest (registry/repo[:tag]@sha256:<64 hex>): {why}")]
pub struct ImageRefError {
    /// The rejected text, escaped and shortened.
    pub text: String,
    /// Which part is wrong.
    pub why: &'static str,
}

crate::validated_string! {
    /// A container image reference pinned by digest:
    /// `registry/repo[:tag]@sha256:<64 lowercase hex>`, e.g.
    /// `docker.io/coredns/coredns:1.11.3@sha256:9caa…`. The grammar is the
    /// OCI distribution reference grammar restricted to lowercase names, so a
    /// reference with a space, quote, newline or `$` cannot exist, and the
    /// digest makes a moved tag harmless. It is embedded in systemd units
    /// (`docker run … IMAGE`).
    ///
    /// ```
    /// use flatcar_topology::ImageRef;
    /// let digest = "0".repeat(64);
    /// assert!(ImageRef::new(format!("docker.io/library/haproxy:lts@sha256:{digest}")).is_ok());
    /// assert!(ImageRef::new(format!("docker.io/cturra/ntp@sha256:{digest}")).is_ok());
    /// assert!(ImageRef::new("docker.io/library/haproxy:lts").is_err()); // not pinned
    /// assert!(ImageRef::new(format!("haproxy\n--privileged@sha256:{digest}")).is_err());
    /// ```
    pub struct ImageRef;
    error = ImageRefError;
    validate = image_ref;
}

fn component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or runs of '-'.
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn registry(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && name.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn image_ref(s: &str) -> Result<(), ImageRefError> {
    let err = |why| ImageRefError {
        text: crate::text::shown(s),
        why,
    };
    if s.len() > 512 {
        return Err(err("longer than 512 characters"));
    }
    let (name_tag, digest) = s
        .split_once("@sha256:")
        .ok_or_else(|| err("no @sha256: digest"))?;
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(err("the digest is not 64 lowercase hex digits"));
    }
    let (name, tag) = match name_tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (name_tag, None),
    };
    if let Some(t) = tag {
        let b = t.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
        if !ok {
            return Err(err("the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() < 2 {
        return Err(err("no registry/ before the repository"));
    }
    let host = parts.remove(0);
    if !registry(host) {
        return Err(err("the registry is not a host name[:port]"));
    }
    if !parts.iter().all(|p| component(p)) {
        return Err(err(
            "a repository path component is not lowercase [a-z0-9] with '.', '_', '__' or '-' between",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let d = "a".repeat(64);
        for ok in [
            format!("docker.io/library/haproxy:lts@sha256:{d}"),
            format!("registry.local:5000/a/b-c/d__e:v1.2_3@sha256:{d}"),
            format!("docker.io/cturra/ntp@sha256:{d}"),
        ] {
            assert!(ImageRef::new(ok.clone()).is_ok(), "{ok}");
        }
        for bad in [
            "docker.io/library/haproxy:lts".to_string(),
            format!("haproxy:lts@sha256:{d}"),
            format!("docker.io/library/haproxy:lts@sha256:{}", "A".repeat(64)),
            format!("docker.io/library/HAProxy:lts@sha256:{d}"),
            format!("docker.io/library/haproxy:lts\n@sha256:{d}"),
            format!("docker.io/library/haproxy :lts@sha256:{d}"),
            format!("docker.io/library/haproxy:\"x\"@sha256:{d}"),
            format!("docker.io/library/haproxy:lts@sha256:{d}\nExecStartPre=/bin/sh"),
            format!("docker.io/lib--/x@sha256:{d}"),
            format!("docker.io/$(id)/x@sha256:{d}"),
        ] {
            let e = ImageRef::new(bad.clone()).expect_err(&bad);
            assert!(crate::text::is_clean(&e.to_string()), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
