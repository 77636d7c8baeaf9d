//! Checkpoint resolution against a fake Hugging Face hub (a real HTTP server on 127.0.0.1):
//! local directory first, then the volume cache, then a download into that cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use chatterbox_worker::engine::checkpoints::{CheckpointSource, RepoFiles};

const REPO: &str = "ResembleAI/chatterbox-turbo";
const FILES: RepoFiles<'static> = RepoFiles {
    repo_id: REPO,
    required: &["t3.safetensors", "vocab.json"],
    optional: &["conds.pt"],
};

#[derive(Clone, Default)]
struct Hub {
    files: Arc<HashMap<String, Vec<u8>>>,
    requests: Arc<Mutex<Vec<String>>>,
    token: Option<&'static str>,
}

async fn resolve_file(
    State(hub): State<Hub>,
    headers: HeaderMap,
    UrlPath((owner, name, revision, file)): UrlPath<(String, String, String, String)>,
) -> Result<Vec<u8>, StatusCode> {
    let path = format!("{owner}/{name}/{revision}/{file}");
    hub.requests.lock().unwrap().push(path);
    if let Some(token) = hub.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
            return Err(StatusCode::UNAUTHORIZED);
        }
    }
    hub.files
        .get(&format!("{owner}/{name}/{file}"))
        .cloned()
        .ok_or(StatusCode::NOT_FOUND)
}

async fn start_hub(files: &[(&str, &[u8])], token: Option<&'static str>) -> (String, Hub) {
    let hub = Hub {
        files: Arc::new(
            files
                .iter()
                .map(|(name, bytes)| (format!("{REPO}/{name}"), bytes.to_vec()))
                .collect(),
        ),
        token,
        ..Hub::default()
    };
    let app = Router::new()
        .route(
            "/{owner}/{name}/resolve/{revision}/{file}",
            axum::routing::get(resolve_file),
        )
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), hub)
}

fn source(
    endpoint: &str,
    cache: &Path,
    local: Option<&Path>,
    token: Option<&str>,
) -> CheckpointSource {
    CheckpointSource {
        local_dir: local.map(Path::to_path_buf),
        hub_caches: Vec::new(),
        cache_dir: cache.to_path_buf(),
        hf_endpoint: endpoint.to_string(),
        hf_token: token.map(str::to_string),
    }
}

#[tokio::test]
async fn downloads_into_the_volume_cache_once() {
    let (endpoint, hub) = start_hub(
        &[("t3.safetensors", b"weights"), ("vocab.json", b"{}")],
        Some("hf_secret"),
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let source = source(&endpoint, cache.path(), None, Some("hf_secret"));
    let dir = source.resolve(FILES).await.unwrap();
    assert_eq!(dir, cache.path().join(REPO));
    assert_eq!(
        std::fs::read(dir.join("t3.safetensors")).unwrap(),
        b"weights"
    );
    assert!(
        !dir.join("conds.pt").exists(),
        "a missing optional file is skipped"
    );
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
    let first = hub.requests.lock().unwrap().len();
    assert_eq!(first, 3);
    source.resolve(FILES).await.unwrap();
    assert_eq!(
        hub.requests.lock().unwrap().len(),
        first,
        "the cache is reused"
    );
}

#[tokio::test]
async fn a_local_directory_wins_flat_or_per_repository() {
    let (endpoint, hub) = start_hub(&[], None).await;
    let cache = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let per_repo = local.path().join("chatterbox-turbo");
    std::fs::create_dir_all(&per_repo).unwrap();
    for file in FILES.required {
        std::fs::write(per_repo.join(file), b"x").unwrap();
    }
    let source = source(&endpoint, cache.path(), Some(local.path()), None);
    assert_eq!(source.resolve(FILES).await.unwrap(), per_repo);
    for file in FILES.required {
        std::fs::write(local.path().join(file), b"x").unwrap();
    }
    std::fs::remove_dir_all(&per_repo).unwrap();
    assert_eq!(source.resolve(FILES).await.unwrap(), local.path());
    assert!(hub.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_hugging_face_hub_cache_is_used_as_it_lies() {
    let (endpoint, hub) = start_hub(&[], None).await;
    let cache = tempfile::tempdir().unwrap();
    let hub_cache = tempfile::tempdir().unwrap();
    // The hub layout RunPod's model caching writes: refs/main names the snapshot, whose files
    // are links into blobs/.
    let repo = hub_cache
        .path()
        .join(format!("models--{}", REPO.replace('/', "--")));
    let snapshot = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
    for (index, file) in FILES.required.iter().enumerate() {
        let blob = repo.join(format!("blobs/{index}"));
        std::fs::write(&blob, b"x").unwrap();
        std::os::unix::fs::symlink(&blob, snapshot.join(file)).unwrap();
    }
    let mut source = source(&endpoint, cache.path(), None, None);
    source.hub_caches = vec![cache.path().join("absent"), hub_cache.path().to_path_buf()];
    assert_eq!(source.resolve(FILES).await.unwrap(), snapshot);
    assert!(
        hub.requests.lock().unwrap().is_empty(),
        "nothing downloaded"
    );
    // The variables name the caches; RunPod's path is always looked at first.
    let from_env = CheckpointSource::from_lookup(
        |name| (name == "HF_HOME").then(|| "/models/hf".to_string()),
        cache.path().to_path_buf(),
    );
    assert_eq!(
        from_env.hub_caches,
        [
            Path::new(chatterbox_worker::engine::checkpoints::RUNPOD_HUB_CACHE),
            Path::new("/models/hf/hub")
        ]
    );
}

#[tokio::test]
async fn failures_name_the_file_and_hint_at_the_token() {
    let (endpoint, _) = start_hub(&[("t3.safetensors", b"w")], Some("hf_secret")).await;
    let cache = tempfile::tempdir().unwrap();
    let error = source(&endpoint, cache.path(), None, None)
        .resolve(FILES)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("t3.safetensors") && error.contains("HF_TOKEN"),
        "{error}"
    );
    let error = source(&endpoint, cache.path(), None, Some("hf_secret"))
        .resolve(FILES)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("vocab.json") && error.contains("404"),
        "{error}"
    );
}
