//! Scratch: RSS of the embedded store under guest churn alone.
use tandem::store::{NewUser, RefreshRecord, UserStore, embedded::EmbeddedStore};

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with_cache(&dir.path().join("t.redb"), 8 << 20).await.unwrap();
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(60000);
    for i in 0..n {
        let u = store
            .create_user(NewUser { username: format!("guest_{i:08x}"), email: None, password_hash: None, is_guest: true })
            .await
            .unwrap();
        store
            .insert_refresh(&format!("{:064x}", i), RefreshRecord { user_id: u.id.clone(), expires_at: chrono::Utc::now() })
            .await
            .unwrap();
        store.set_last_seen_many(vec![(u.id, chrono::Utc::now())]).await.unwrap();
        if i % 10000 == 0 {
            let len = std::fs::metadata(dir.path().join("t.redb")).unwrap().len();
            println!("{i:>7} users: rss {:.1} MB, file {:.1} MB", rss_mb(), len as f64 / 1e6);
        }
    }
    println!("end: rss {:.1} MB", rss_mb());
}
