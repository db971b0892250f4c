//! Several replicas on one database: heartbeats and `GET /admin/v1/replicas`.

use std::time::Duration;

use reqwest::Method;
use sheepdog_testkit::*;

#[tokio::test]
async fn replicas_list_every_live_replica_on_both_databases() {
    on_both(|db| async move {
        let test_db = TestDb::new(db).await;
        let a = TestGateway::builder_on_url(&test_db.url).start().await;
        let b = TestGateway::builder_on_url(&test_db.url).start().await;
        // Each writes a heartbeat at start, then every 2 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let list = loop {
            let (status, list) = a.admin(Method::GET, "/admin/v1/replicas", None).await;
            assert_eq!(status, 200, "{list}");
            if list["data"].as_array().unwrap().len() == 2 || tokio::time::Instant::now() > deadline {
                break list;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{db:?}: {list}");
        for r in data {
            assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(r["id"].as_str().unwrap().len(), 36);
            for field in ["started_at", "last_seen_at"] {
                assert!(r[field].as_str().unwrap().ends_with('Z'), "{field}: {r}");
            }
            assert!(r["in_flight"].as_u64().is_some());
        }
        assert_eq!((list["redis"].as_str(), list["database"].as_str()), (Some("off"), Some("up")));
        // A replica that stops cleanly leaves the list at once.
        b.stop().await;
        let (_, list) = a.admin(Method::GET, "/admin/v1/replicas", None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{db:?}: {list}");
        a.stop().await;
    })
    .await;
}
