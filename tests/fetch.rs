//! Audio URLs fetched from real servers on 127.0.0.1.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chatterbox_worker::storage::fetch::{FetchError, FetchPolicy, fetch};

async fn server() -> String {
    let app = Router::new()
        .route("/clip.wav", get(|| async { vec![7u8; 2048] }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/moved",
            get(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "/clip.wav")]).into_response()
            }),
        )
        .route(
            "/to-file",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "file:///etc/passwd")],
                )
                    .into_response()
            }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn policy(allow_private: bool) -> FetchPolicy {
    FetchPolicy {
        max_bytes: 4096,
        allow_private,
        timeout: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let base = server().await;
    let url = format!("{base}/clip.wav");
    assert!(matches!(
        fetch(&url, &policy(false)).await,
        Err(FetchError::Refused(_))
    ));
    assert_eq!(fetch(&url, &policy(true)).await.unwrap(), vec![7u8; 2048]);
    let metadata = fetch("http://169.254.169.254/latest/meta-data/", &policy(false)).await;
    assert!(matches!(metadata, Err(FetchError::Refused(_))));
}

#[tokio::test]
async fn size_status_redirects_and_time_are_bounded() {
    let base = server().await;
    let small = FetchPolicy {
        max_bytes: 1024,
        ..policy(true)
    };
    assert_eq!(
        fetch(&format!("{base}/clip.wav"), &small).await,
        Err(FetchError::TooLarge(1024))
    );
    assert_eq!(
        fetch(&format!("{base}/missing"), &policy(true)).await,
        Err(FetchError::Status(404))
    );
    assert_eq!(
        fetch(&format!("{base}/moved"), &policy(true))
            .await
            .unwrap()
            .len(),
        2048
    );
    assert!(matches!(
        fetch(&format!("{base}/to-file"), &policy(true)).await,
        Err(FetchError::Scheme(_))
    ));
    assert_eq!(
        fetch(&format!("{base}/loop"), &policy(true)).await,
        Err(FetchError::Redirects)
    );
    assert!(matches!(
        fetch(&format!("{base}/slow"), &policy(true)).await,
        Err(FetchError::Transport(_))
    ));
    assert!(matches!(
        fetch("ftp://example.com/a.wav", &policy(true)).await,
        Err(FetchError::Scheme(_))
    ));
    assert!(matches!(
        fetch("not a url", &policy(true)).await,
        Err(FetchError::Invalid(_))
    ));
}
