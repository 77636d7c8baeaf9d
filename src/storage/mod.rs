//! Everything that reads or writes outside the process: the network volume and S3.

pub mod fetch;
pub mod inputs;
pub mod outputs;
pub mod s3;
pub mod voices;
pub mod volume;

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader or a crash never sees half a file.
pub async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(folder).await?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = folder.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    tokio::fs::write(&temporary, bytes).await?;
    match tokio::fs::rename(&temporary, path).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = tokio::fs::remove_file(&temporary).await;
            Err(error)
        }
    }
}
