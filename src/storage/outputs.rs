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
    /// The JSON companion a saving job wrote beside it (parameters, generation details).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_path: Option<String>,
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
                metadata_path: None,
            });
        }
    }
    attach_companions(&mut listing.files);
    listing.files.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.path.cmp(&b.path))
    });
    listing.empty.sort();
    Ok(listing)
}

/// A `{stem}.json` beside `{stem}.{audio}` is that file's metadata: named on the audio, not
/// listed on its own.
fn attach_companions(files: &mut Vec<OutputFile>) {
    let stem = |path: &str| {
        path.rsplit_once('.')
            .map_or(path, |(stem, _)| stem)
            .to_string()
    };
    let companions: std::collections::HashSet<String> = files
        .iter()
        .filter(|f| f.path.ends_with(".json"))
        .map(|f| stem(&f.path))
        .collect();
    let mut described = std::collections::HashSet::new();
    for file in files.iter_mut().filter(|f| !f.path.ends_with(".json")) {
        let stem = stem(&file.path);
        if companions.contains(&stem) {
            file.metadata_path = Some(format!("{stem}.json"));
            described.insert(stem);
        }
    }
    files.retain(|f| !(f.path.ends_with(".json") && described.contains(&stem(&f.path))));
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

/// `{kind}_{UTC YYYYmmdd_HHMMSS_mmm}_{detail}`: the seeds' enhanced file names, sortable by time.
pub fn stamped_stem(kind: &str, detail: &str) -> String {
    format!(
        "{kind}_{}_{detail}",
        utc_stamp(std::time::SystemTime::now())
    )
}

/// Saves each `(extension, bytes)` as `output/[project/]{stem}.{extension}` with a JSON
/// companion `{stem}.json` holding `metadata`, all written atomically. Returns the paths
/// under output/ of the audio files.
pub async fn save(
    output: &Path,
    project: Option<&str>,
    stem: &str,
    files: &[(&str, &[u8])],
    metadata: &serde_json::Value,
) -> std::io::Result<Vec<String>> {
    let folder = project.map_or(output.to_path_buf(), |p| output.join(p));
    let relative = |name: &str| project.map_or(name.to_string(), |p| format!("{p}/{name}"));
    let mut saved = Vec::with_capacity(files.len());
    for (extension, bytes) in files {
        let audio = format!("{stem}.{extension}");
        super::write_atomically(&folder.join(&audio), bytes).await?;
        saved.push(relative(&audio));
    }
    let json = serde_json::to_vec_pretty(metadata).map_err(std::io::Error::other)?;
    super::write_atomically(&folder.join(format!("{stem}.json")), &json).await?;
    Ok(saved)
}

/// `YYYYmmdd_HHMMSS_mmm` in UTC.
fn utc_stamp(time: std::time::SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let rest = seconds % 86_400;
    let (year, month, day) = civil_date(seconds / 86_400);
    format!(
        "{year:04}{month:02}{day:02}_{:02}{:02}{:02}_{:03}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), by Howard Hinnant's algorithm.
pub(super) fn civil_date(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "19700101_000000_000");
        assert_eq!(at(951_782_400), "20000229_000000_000");
        assert_eq!(at(1_795_345_200 + 3_723), "20261122_120203_000");
    }
}
