//! The volume's `output/` folder as a listing: files directly in it and in its project
//! sub-folders, newest first. Links are not followed, so nothing outside the folder is listed.

use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutputFile {
    /// The path under `output/`, `/`-separated.
    pub path: String,
    /// The project folder, when the file is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub size_bytes: u64,
    /// Seconds since the Unix epoch.
    pub modified: u64,
}

#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<OutputFile>,
    /// Files of size zero (interrupted writes), reported rather than listed.
    pub empty: Vec<String>,
}

/// Files under `output` (one level of project folders), or only those of `project`.
pub async fn list(output: &Path, project: Option<&str>) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    let folders: Vec<Option<String>> = match project {
        Some(project) => vec![Some(project.to_string())],
        None => {
            let mut folders = vec![None];
            folders.extend(subfolders(output).await?.into_iter().map(Some));
            folders
        }
    };
    for folder in folders {
        let dir = folder
            .as_ref()
            .map_or(output.to_path_buf(), |f| output.join(f));
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            continue;
        };
        while let Some(entry) = entries.next_entry().await? {
            let metadata = entry.metadata().await?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !metadata.is_file() || name.starts_with('.') {
                continue;
            }
            let path = folder
                .as_ref()
                .map_or(name.clone(), |f| format!("{f}/{name}"));
            if metadata.len() == 0 {
                listing.empty.push(path);
                continue;
            }
            let modified = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            listing.files.push(OutputFile {
                path,
                project: folder.clone(),
                size_bytes: metadata.len(),
                modified,
            });
        }
    }
    listing.files.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.path.cmp(&b.path))
    });
    listing.empty.sort();
    Ok(listing)
}

/// Real sub-folders (not links) of `output`.
async fn subfolders(output: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(output).await else {
        return Ok(found);
    };
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_type().await?.is_dir()
            && let Some(name) = entry.file_name().to_str()
        {
            found.push(name.to_string());
        }
    }
    found.sort();
    Ok(found)
}
