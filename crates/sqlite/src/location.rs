//! Where a store lives: a `sqlite:` URL parsed into what `sqlite3_open_v2` needs.
//!
//! The accepted syntax is the one tokenwarden has always taken (that of sqlx's
//! `SqliteConnectOptions`): `sqlite://path`, `sqlite:path` or `sqlite::memory:`, the path
//! percent-decoded (so `%3F` is a `?` in a file name), and the SQLite URI parameters `mode`
//! (`ro`, `rw`, `rwc`, `memory`), `cache` (`shared`, `private`), `immutable` and `vfs`. Any other
//! parameter is an error rather than silently ignored. A file is created when missing unless
//! `mode=ro`.

use std::path::PathBuf;

use rusqlite::OpenFlags;
use tokenwarden_core::store::StoreError;

/// A parsed database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A private in-memory database: it lives and dies with its one connection.
    Memory,
    /// A database file.
    File {
        /// The file name as given (percent-decoded), for logs.
        path: PathBuf,
        /// A SQLite URI filename (`file:…`) naming the file, with the URI-only parameters.
        uri: String,
        /// How to open it.
        flags: OpenFlags,
    },
}

fn invalid(msg: String) -> StoreError {
    StoreError::Unavailable(format!("invalid SQLite URL: {msg}"))
}

/// Parses `url`.
pub(crate) fn parse(url: &str) -> Result<Location, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::Unavailable(format!(
                "not a SQLite database URL (expected sqlite://path or sqlite::memory:): {url}"
            ))
        })?;
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let database = percent_decode(database)?;

    let mut memory = database == ":memory:";
    let mut read_only = false;
    let mut shared_cache = None;
    let mut uri_params = Vec::new();
    for pair in params.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Query values are form-encoded: `+` is a space.
        let value = percent_decode(&value.replace('+', " "))?;
        match (key, value.as_str()) {
            ("mode", "ro") => read_only = true,
            // A missing file is created in every writable mode, as it always was.
            ("mode", "rw" | "rwc") => {}
            ("mode", "memory") => memory = true,
            ("cache", "shared") => shared_cache = Some(true),
            ("cache", "private") => shared_cache = Some(false),
            ("immutable", "true" | "1") => uri_params.push("immutable=1".to_owned()),
            ("immutable", "false" | "0") => {}
            ("vfs", vfs) => uri_params.push(format!("vfs={}", percent_encode(vfs))),
            ("mode" | "cache" | "immutable", other) => {
                return Err(invalid(format!("unknown value {other:?} for `{key}`")))
            }
            _ => return Err(invalid(format!("unknown query parameter `{key}`"))),
        }
    }
    if memory {
        return Ok(Location::Memory);
    }

    let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    flags |= if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    match shared_cache {
        Some(true) => flags |= OpenFlags::SQLITE_OPEN_SHARED_CACHE,
        Some(false) => flags |= OpenFlags::SQLITE_OPEN_PRIVATE_CACHE,
        None => {}
    }
    let mut uri = format!("file:{}", percent_encode(&database));
    if !uri_params.is_empty() {
        uri.push('?');
        uri.push_str(&uri_params.join("&"));
    }
    Ok(Location::File {
        path: PathBuf::from(database),
        uri,
        flags,
    })
}

/// Decodes `%XX` escapes; any other byte stands for itself. The result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, StoreError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("the path is not UTF-8 once decoded".into()))
}

/// Escapes everything but unreserved characters and `/`, so `?`, `#` and `%` in a file name
/// cannot be read as URI syntax by SQLite (which decodes `%XX` in URI filenames).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str) -> (PathBuf, String, OpenFlags) {
        match parse(url).unwrap() {
            Location::File { path, uri, flags } => (path, uri, flags),
            Location::Memory => panic!("{url} is not a file"),
        }
    }

    #[test]
    fn memory_urls_are_recognized() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite://?mode=memory&cache=private",
        ] {
            assert_eq!(parse(url).unwrap(), Location::Memory, "{url}");
        }
        file("sqlite://tokenwarden.db");
        file("sqlite:data/memory.db");
    }

    #[test]
    fn file_urls_become_escaped_uris_with_flags() {
        let (path, uri, flags) = file("sqlite:///tmp/a%3Fb%20c.db");
        assert_eq!(path, PathBuf::from("/tmp/a?b c.db"));
        assert_eq!(uri, "file:/tmp/a%3Fb%20c.db");
        assert!(flags.contains(OpenFlags::SQLITE_OPEN_CREATE));

        let (path, uri, flags) = file("sqlite:data/tw.db?mode=ro&immutable=1");
        assert_eq!(path, PathBuf::from("data/tw.db"));
        assert_eq!(uri, "file:data/tw.db?immutable=1");
        assert!(flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY));
        assert!(!flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
    }

    #[test]
    fn other_urls_and_unknown_parameters_are_refused() {
        for url in [
            "postgres://localhost/tokenwarden",
            "tokenwarden.db",
            "",
            "sqlite://a.db?journal=wal",
            "sqlite://a.db?mode=rx",
        ] {
            assert!(
                matches!(parse(url), Err(StoreError::Unavailable(_))),
                "{url}"
            );
        }
    }
}
