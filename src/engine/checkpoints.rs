//! Finding a model's checkpoint files: a local directory (`CHATTERBOX_CHECKPOINT_DIR`), then a
//! Hugging Face hub cache (RunPod's cached models at `/runpod-volume/huggingface-cache/hub`,
//! `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `HF_HOME/hub`), then the network volume's own
//! cache, then a download from the hub into that cache, so a fleet of workers sharing a volume
//! downloads each file once.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

pub const CHECKPOINT_DIR_VAR: &str = "CHATTERBOX_CHECKPOINT_DIR";
pub const HF_ENDPOINT_VAR: &str = "HF_ENDPOINT";
pub const HF_TOKEN_VAR: &str = "HF_TOKEN";
/// Where RunPod's model caching puts an endpoint's Hugging Face model.
pub const RUNPOD_HUB_CACHE: &str = "/runpod-volume/huggingface-cache/hub";
const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
const REVISION: &str = "main";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("downloading {file} of {repo} failed: {reason}")]
    Download {
        repo: String,
        file: String,
        reason: String,
    },
    #[error("writing {path} failed: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// One repository's files: those a model cannot load without, and those it uses when present
/// (the built-in voice, the Cangjie table).
#[derive(Debug, Clone, Copy)]
pub struct RepoFiles<'a> {
    pub repo_id: &'a str,
    pub required: &'a [&'a str],
    pub optional: &'a [&'a str],
}

#[derive(Debug, Clone)]
pub struct CheckpointSource {
    pub local_dir: Option<PathBuf>,
    /// Hugging Face hub caches (`models--{org}--{name}/snapshots/{revision}/`), searched in
    /// order; read only.
    pub hub_caches: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    pub hf_endpoint: String,
    pub hf_token: Option<String>,
}

impl CheckpointSource {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>, cache_dir: PathBuf) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut hub_caches: Vec<PathBuf> = [RUNPOD_HUB_CACHE.into()]
            .into_iter()
            .chain(set("HF_HUB_CACHE").map(PathBuf::from))
            .chain(set("HUGGINGFACE_HUB_CACHE").map(PathBuf::from))
            .chain(set("HF_HOME").map(|home| PathBuf::from(home).join("hub")))
            .collect();
        hub_caches.dedup();
        Self {
            local_dir: set(CHECKPOINT_DIR_VAR).map(PathBuf::from),
            hub_caches,
            cache_dir,
            hf_endpoint: set(HF_ENDPOINT_VAR)
                .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.into())
                .trim_end_matches('/')
                .to_string(),
            hf_token: set(HF_TOKEN_VAR),
        }
    }

    /// The directory holding the repository's required files, downloading what is missing.
    pub async fn resolve(&self, files: RepoFiles<'_>) -> Result<PathBuf, CheckpointError> {
        let name = repo_name(files.repo_id);
        let mut local = self
            .local_dir
            .iter()
            .flat_map(|dir| [dir.join(name), dir.clone()]);
        if let Some(dir) = local.find(|dir| has_all(dir, files.required)) {
            return Ok(dir);
        }
        if let Some(dir) = &self.local_dir {
            tracing::warn!(
                "{CHECKPOINT_DIR_VAR}={} lacks {} files; using the volume cache",
                dir.display(),
                files.repo_id
            );
        }
        if let Some(snapshot) = self
            .hub_caches
            .iter()
            .find_map(|hub| hub_snapshot(hub, files.repo_id, files.required))
        {
            return Ok(snapshot);
        }
        let cached = self.cache_dir.join(files.repo_id);
        if has_all(&cached, files.required) {
            return Ok(cached);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("chatterbox-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| self.download_error(files.repo_id, "", e))?;
        for (file, required) in files
            .required
            .iter()
            .map(|f| (f, true))
            .chain(files.optional.iter().map(|f| (f, false)))
        {
            if cached.join(file).is_file() {
                continue;
            }
            self.download(&client, files.repo_id, file, &cached, required)
                .await?;
        }
        Ok(cached)
    }

    fn download_error(&self, repo: &str, file: &str, reason: impl ToString) -> CheckpointError {
        CheckpointError::Download {
            repo: repo.into(),
            file: file.into(),
            reason: reason.to_string(),
        }
    }

    /// Streams one file to a private temporary name beside its target, then renames it into
    /// place, so a reader never sees half a file and concurrent workers never clash.
    async fn download(
        &self,
        client: &reqwest::Client,
        repo: &str,
        file: &str,
        dir: &Path,
        required: bool,
    ) -> Result<(), CheckpointError> {
        let url = format!("{}/{repo}/resolve/{REVISION}/{file}", self.hf_endpoint);
        let mut request = client.get(&url);
        if let Some(token) = &self.hf_token {
            request = request.bearer_auth(token);
        }
        let fail = |reason: String| self.download_error(repo, file, reason);
        let mut response = request.send().await.map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && !required {
            tracing::info!("{repo} has no {file}; going on without it");
            return Ok(());
        }
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => " (set HF_TOKEN if the repository is gated)",
                _ => "",
            };
            return Err(fail(format!("{url} answered {status}{hint}")));
        }
        let target = dir.join(file);
        let partial = dir.join(format!(".{file}.{}.part", uuid::Uuid::new_v4()));
        let write_error = |path: &Path, e: std::io::Error| CheckpointError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| write_error(dir, e))?;
        tracing::info!("downloading {url}");
        let written = async {
            let mut out = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| write_error(&partial, e))?;
            while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
                out.write_all(&chunk)
                    .await
                    .map_err(|e| write_error(&partial, e))?;
            }
            out.flush().await.map_err(|e| write_error(&partial, e))?;
            tokio::fs::rename(&partial, &target)
                .await
                .map_err(|e| write_error(&target, e))
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        written
    }
}

/// `ResembleAI/chatterbox-turbo` → `chatterbox-turbo`: a local directory may hold one
/// sub-directory per repository.
fn repo_name(repo_id: &str) -> &str {
    repo_id.rsplit('/').next().unwrap_or(repo_id)
}

/// The snapshot of `repo_id` in a hub cache that holds every required file: the one
/// `refs/main` names, else any complete one (a cache filled for a pinned revision).
fn hub_snapshot(hub: &Path, repo_id: &str, required: &[&str]) -> Option<PathBuf> {
    let repo = hub.join(format!("models--{}", repo_id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let main = std::fs::read_to_string(repo.join("refs").join(REVISION))
        .ok()
        .map(|hash| snapshots.join(hash.trim()));
    let others = std::fs::read_dir(&snapshots)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()));
    main.into_iter()
        .chain(others)
        .find(|dir| has_all(dir, required))
}

fn has_all(dir: &Path, files: &[&str]) -> bool {
    files.iter().all(|f| dir.join(f).is_file())
}
