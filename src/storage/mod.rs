//! Everything that reads or writes outside the process: the network volume and S3.

pub mod fetch;
pub mod inputs;
pub mod outputs;
pub mod s3;
pub mod voices;
pub mod volume;

use std::path::{Path, PathBuf};

/// A name that is also a safe file or folder name (voices, projects): 1 to 64 ASCII letters,
/// digits, `-` and `_`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A file written under a temporary name beside its destination (same folder, so the rename
/// is atomic), put in place by [`Staged::commit`]: a reader or a crash never sees half a file.
pub struct Staged {
    temporary: PathBuf,
    path: PathBuf,
}

impl Staged {
    pub async fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Self> {
        let folder = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(folder).await?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let temporary = folder.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
        tokio::fs::write(&temporary, bytes).await?;
        Ok(Self {
            temporary,
            path: path.to_path_buf(),
        })
    }

    /// Renames the file into place (replacing a link rather than following it).
    pub async fn commit(self) -> std::io::Result<()> {
        match tokio::fs::rename(&self.temporary, &self.path).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.discard().await;
                Err(error)
            }
        }
    }

    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.temporary).await;
    }
}

/// Writes `bytes` to `path` atomically.
pub async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Staged::write(path, bytes).await?.commit().await
}
