//! Audio a job hands in: a file under one of the volume's folders (through the one path check)
//! or inline base64 (a `data:` URL or bare). The bytes are returned; decoding is `audio`'s.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;

/// The largest audio a job may hand in, inline or from the volume.
pub const MAX_AUDIO_BYTES: u64 = 50 * 1024 * 1024;
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("{0:?} is not a plain relative file name inside the volume folder")]
    UnsafePath(String),
    #[error("no file {0:?} in the volume folder")]
    NotFound(String),
    #[error("the audio is larger than {MAX_AUDIO_BYTES} bytes")]
    TooLarge,
    #[error("the audio is not valid base64: {0}")]
    Base64(String),
    #[error("the audio could not be read")]
    Read,
}

/// `name` joined onto `folder`, refused when it could leave it: absolute paths, `..`, NUL,
/// over-long names, and symbolic links that resolve outside the folder.
pub fn under(folder: &Path, name: &str) -> Result<PathBuf, InputError> {
    let unsafe_path = || InputError::UnsafePath(name.chars().take(80).collect());
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(unsafe_path());
    }
    let relative = Path::new(name);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(unsafe_path());
    }
    let joined = folder.join(relative);
    match (joined.canonicalize(), folder.canonicalize()) {
        (Ok(real), Ok(root)) if real.starts_with(&root) => Ok(joined),
        (Ok(_), Ok(_)) => Err(unsafe_path()),
        _ => Err(InputError::NotFound(name.chars().take(80).collect())),
    }
}

/// The bytes of a file under `folder`.
pub async fn read_file(folder: &Path, name: &str) -> Result<Vec<u8>, InputError> {
    let path = under(folder, name)?;
    let metadata = tokio::fs::metadata(&path)
        .await
        .map_err(|_| InputError::Read)?;
    if !metadata.is_file() {
        return Err(InputError::NotFound(name.chars().take(80).collect()));
    }
    if metadata.len() > MAX_AUDIO_BYTES {
        return Err(InputError::TooLarge);
    }
    tokio::fs::read(&path).await.map_err(|_| InputError::Read)
}

/// Inline audio: bare base64 or a `data:…;base64,` URL.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, InputError> {
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(";base64,")
            .map(|(_, data)| data)
            .ok_or_else(|| InputError::Base64("a data URL must be base64-encoded".into()))?,
        None => text,
    };
    let payload = payload.trim();
    if payload.len() as u64 > MAX_AUDIO_BYTES / 3 * 4 + 4 {
        return Err(InputError::TooLarge);
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| InputError::Base64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("audio_prompts");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("sub/voice.wav"), b"x").unwrap();
        std::fs::write(root.path().join("secret.wav"), b"x").unwrap();
        assert!(under(&folder, "sub/voice.wav").is_ok());
        for bad in [
            "../secret.wav",
            "/etc/passwd",
            "sub/../../secret.wav",
            "a\0b",
            "",
        ] {
            assert!(
                matches!(under(&folder, bad), Err(InputError::UnsafePath(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            under(&folder, &"a".repeat(300)),
            Err(InputError::UnsafePath(_))
        ));
        assert_eq!(
            under(&folder, "missing.wav"),
            Err(InputError::NotFound("missing.wav".into()))
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("secret.wav"), folder.join("link.wav"))
                .unwrap();
            assert!(matches!(
                under(&folder, "link.wav"),
                Err(InputError::UnsafePath(_))
            ));
        }
    }

    #[test]
    fn base64_and_data_urls_decode() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("data:audio/wav;base64,aGk=").unwrap(), b"hi");
        assert!(decode_base64("data:audio/wav,hi").is_err());
        assert!(decode_base64("not base64!").is_err());
    }
}
