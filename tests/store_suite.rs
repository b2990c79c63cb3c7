//! One behaviour suite for `UserStore`, run against every backend: the
//! embedded store always, MongoDB when TANDEM_TEST_MONGODB_URI names a
//! running MongoDB-speaking server (scripts/test starts one and sets it).

use std::sync::Arc;

use chrono::{Duration, Utc};
use tandem::store::{
    Author, Device, NewUser, RefreshRecord, RoomMessage, StoreError, UserStore,
    embedded::EmbeddedStore, mongo::MongoStore,
};

fn new_user(name: &str, email: Option<&str>) -> NewUser {
    NewUser {
        username: name.to_string(),
        email: email.map(str::to_string),
        password_hash: email.map(|_| "$2b$04$hash".to_string()),
        is_guest: email.is_none(),
    }
}

async fn last_seen(store: &dyn UserStore, id: &str) -> chrono::DateTime<Utc> {
    store
        .user_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .last_seen
        .unwrap()
}

async fn behaviour(store: Arc<dyn UserStore>) {
    store.ping().await.unwrap();
    let before = store.count_users().await.unwrap();

    // Create and read back.
    let alice = store
        .create_user(new_user("Alice", Some("alice@example.com")))
        .await
        .unwrap();
    assert_eq!(alice.id.len(), 24);
    assert_eq!(
        store.user_by_id(&alice.id).await.unwrap().as_ref(),
        Some(&alice)
    );
    let by_email = store
        .user_by_email("ALICE@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.id, alice.id);
    assert_eq!(by_email.password_hash.as_deref(), Some("$2b$04$hash"));
    assert!(
        store
            .user_by_id("000000000000000000000000")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // Uniqueness is case-insensitive and names the field.
    let dup_name = store
        .create_user(new_user("ALICE", Some("other@example.com")))
        .await;
    assert_eq!(dup_name, Err(StoreError::Conflict("username")));
    let dup_email = store
        .create_user(new_user("alice2", Some("Alice@Example.com")))
        .await;
    assert_eq!(dup_email, Err(StoreError::Conflict("email")));
    // A failed create leaves nothing behind: the email of the failed name is free.
    store
        .create_user(new_user("someone_else", Some("other@example.com")))
        .await
        .unwrap();

    // Guests have no email; many may coexist.
    let g1 = store
        .create_user(new_user("guest_one", None))
        .await
        .unwrap();
    let g2 = store
        .create_user(new_user("guest_two", None))
        .await
        .unwrap();
    assert!(g1.is_guest && g2.is_guest && g1.email.is_none());
    assert_eq!(
        store.create_user(new_user("GUEST_ONE", None)).await,
        Err(StoreError::Conflict("username"))
    );
    let after = store.count_users().await.unwrap();
    assert_eq!(after.total - before.total, 4);
    assert_eq!(after.guests - before.guests, 2);

    // Only one of many concurrent creates of a name wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_user(new_user("racer", Some(&format!("racer{i}@example.com"))))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e, StoreError::Conflict("username")),
        }
    }
    assert_eq!(wins, 1);

    // Last seen.
    let at = Utc::now();
    store.set_last_seen(&alice.id, at).await.unwrap();
    let seen = last_seen(&*store, &alice.id).await;
    assert!((seen - at).num_milliseconds().abs() <= 1);
    assert_eq!(
        store.set_last_seen("000000000000000000000000", at).await,
        Err(StoreError::NotFound)
    );
    // In a batch, unknown ids are skipped.
    let later = at + chrono::Duration::seconds(5);
    store
        .set_last_seen_many(vec![
            ("000000000000000000000000".into(), later),
            (alice.id.clone(), later),
        ])
        .await
        .unwrap();
    let seen = last_seen(&*store, &alice.id).await;
    assert!((seen - later).num_milliseconds().abs() <= 1);

    // Devices upsert by (user, device id).
    let device = |id: &str, ua: &str| Device {
        user_id: alice.id.clone(),
        device_id: id.to_string(),
        user_agent: Some(ua.to_string()),
        ip: Some("127.0.0.1".into()),
        last_seen: Utc::now(),
    };
    store.upsert_device(device("d1", "first")).await.unwrap();
    store.upsert_device(device("d1", "second")).await.unwrap();
    store.upsert_device(device("d2", "other")).await.unwrap();
    let mut devices = store.devices_of(&alice.id).await.unwrap();
    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].user_agent.as_deref(), Some("second"));
    assert!(store.devices_of(&g1.id).await.unwrap().is_empty());

    // Refresh tokens are single use.
    let rec = RefreshRecord {
        user_id: alice.id.clone(),
        expires_at: Utc::now() + Duration::days(1),
        ip: Some("hmac-of-an-address".into()),
    };
    store.insert_refresh("hash-1", rec.clone()).await.unwrap();
    assert_eq!(
        store.refresh_ips_of(&alice.id).await.unwrap(),
        ["hmac-of-an-address"],
        "a ban of the account finds the addresses of its tokens"
    );
    let taken = store.take_refresh("hash-1").await.unwrap().unwrap();
    assert_eq!(taken.user_id, rec.user_id);
    assert!((taken.expires_at - rec.expires_at).num_milliseconds().abs() <= 1);
    assert!(store.take_refresh("hash-1").await.unwrap().is_none());
    assert!(store.take_refresh("never").await.unwrap().is_none());

    // Concurrent takes of one token: exactly one succeeds.
    store.insert_refresh("hash-2", rec.clone()).await.unwrap();
    let (a, b) = tokio::join!(store.take_refresh("hash-2"), store.take_refresh("hash-2"));
    assert_eq!(a.unwrap().is_some() as u8 + b.unwrap().is_some() as u8, 1);

    // Blocks are idempotent and per user.
    store.add_block(&alice.id, "someone").await.unwrap();
    store.add_block(&alice.id, "someone").await.unwrap();
    store.add_block(&alice.id, "other").await.unwrap();
    let mut blocks = store.blocks_of(&alice.id).await.unwrap();
    blocks.sort();
    assert_eq!(blocks, vec!["other".to_string(), "someone".to_string()]);
    assert!(store.blocks_of("someone").await.unwrap().is_empty());
    assert!(store.remove_block(&alice.id, "someone").await.unwrap());
    assert!(
        !store.remove_block(&alice.id, "someone").await.unwrap(),
        "removed once"
    );
    assert_eq!(store.blocks_of(&alice.id).await.unwrap(), ["other"]);

    bans_and_audit(store.as_ref()).await;
    reports(store.as_ref()).await;
    standing(store.as_ref()).await;
    matching_record(store.as_ref()).await;
    guest_expiry(store.as_ref()).await;
    room_history(store.as_ref()).await;
}

fn room_message(room: &str, offset: u64, at: chrono::DateTime<Utc>) -> RoomMessage {
    RoomMessage {
        room_id: room.into(),
        id: format!("{room}.{offset}"),
        offset,
        from: Author {
            id: "u1".into(),
            username: "ann".into(),
        },
        content: format!("message {offset}"),
        timestamp: at,
    }
}

/// Room history: an epoch made once, pages by offset both ways, a unique
/// offset per room, deletes, and trimming by count and by age (time
/// simulated by stamping messages in the past); the last offset survives
/// trimming.
async fn room_history(store: &dyn UserStore) {
    let room = "lobby-en";
    let s = store.room_state(room).await.unwrap();
    assert_eq!((s.last_offset, s.oldest), (0, None));
    assert_eq!(s.epoch.len(), 16);
    assert_eq!(
        store.room_state(room).await.unwrap().epoch,
        s.epoch,
        "made once"
    );
    assert_ne!(store.room_state("other-en").await.unwrap().epoch, s.epoch);
    let now = Utc::now();
    for o in 1..=30u64 {
        // Offsets 1-10 are two days old, the rest fresh.
        let at = if o <= 10 {
            now - Duration::days(2)
        } else {
            now - Duration::seconds(60 - o as i64)
        };
        store
            .append_room_message(room_message(room, o, at))
            .await
            .unwrap();
    }
    store
        .append_room_message(room_message("other-en", 1, now))
        .await
        .unwrap();
    assert_eq!(
        store.append_room_message(room_message(room, 7, now)).await,
        Err(StoreError::Conflict("offset")),
        "an offset is unique in its room"
    );
    let s = store.room_state(room).await.unwrap();
    assert_eq!((s.last_offset, s.oldest), (30, Some(1)));
    let offsets = |v: Vec<RoomMessage>| v.into_iter().map(|m| m.offset).collect::<Vec<_>>();
    assert_eq!(
        offsets(store.room_messages_before(room, None, 3).await.unwrap()),
        [30, 29, 28]
    );
    assert_eq!(
        offsets(store.room_messages_before(room, Some(28), 2).await.unwrap()),
        [27, 26]
    );
    assert_eq!(
        offsets(store.room_messages_before(room, Some(2), 5).await.unwrap()),
        [1]
    );
    assert_eq!(
        offsets(store.room_messages_after(room, 27, 10).await.unwrap()),
        [28, 29, 30]
    );
    assert_eq!(
        offsets(store.room_messages_after(room, 0, 2).await.unwrap()),
        [1, 2]
    );
    let first = &store.room_messages_after(room, 0, 1).await.unwrap()[0];
    assert_eq!(first, &room_message(room, 1, first.timestamp));
    // Deleting a message leaves a hole, not a renumbering.
    assert_eq!(
        store
            .delete_room_message(room, 29)
            .await
            .unwrap()
            .map(|m| m.offset),
        Some(29)
    );
    assert_eq!(store.delete_room_message(room, 29).await.unwrap(), None);
    assert_eq!(
        offsets(store.room_messages_before(room, None, 3).await.unwrap()),
        [30, 28, 27]
    );
    // By age: the ten old ones go.
    assert_eq!(
        store
            .trim_room(room, 1000, now - Duration::days(1))
            .await
            .unwrap(),
        10
    );
    assert_eq!(store.room_state(room).await.unwrap().oldest, Some(11));
    // By count: the newest 5 stay.
    assert_eq!(
        store
            .trim_room(room, 5, now - Duration::days(1))
            .await
            .unwrap(),
        14
    );
    assert_eq!(
        offsets(store.room_messages_after(room, 0, 100).await.unwrap()),
        [25, 26, 27, 28, 30]
    );
    assert_eq!(
        store
            .trim_room(room, 0, now - Duration::days(1))
            .await
            .unwrap(),
        5
    );
    let s = store.room_state(room).await.unwrap();
    assert_eq!(
        (s.last_offset, s.oldest),
        (30, None),
        "the last offset outlives its messages"
    );
    assert_eq!(
        offsets(store.room_messages_after("other-en", 0, 10).await.unwrap()),
        [1],
        "other rooms untouched"
    );
}

/// Reports: found by target since a time, listed newest first by status,
/// resolved once, and deleted past their retention (time simulated by
/// stamping reports in the past).
async fn reports(store: &dyn UserStore) {
    use tandem::store::{Evidence, Report, new_id};
    let now = Utc::now();
    let report = |reporter: &str, target: &str, age_days: i64| Report {
        id: new_id(),
        reporter: reporter.into(),
        target: target.into(),
        reason: "spam".into(),
        details: Some("buy now".into()),
        room_id: Some("r1".into()),
        evidence: vec![Evidence {
            from: target.into(),
            text: "buy now".into(),
            at: now,
        }],
        created_at: now - Duration::days(age_days),
        status: "open".into(),
        resolution: None,
    };
    let old = report("a", "t", 40);
    let recent = [
        report("a", "t", 0),
        report("b", "t", 0),
        report("c", "other", 0),
    ];
    store.insert_report(old.clone()).await.unwrap();
    for r in &recent {
        store.insert_report(r.clone()).await.unwrap();
    }
    let about = store
        .reports_about("t", now - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        about.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [recent[0].id.as_str(), recent[1].id.as_str()],
        "about t, in the window, oldest first"
    );
    assert_eq!(about[0].evidence[0].text, "buy now");
    let page = store
        .list_reports(Some("open".into()), None, 2)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.reporter.as_str()).collect::<Vec<_>>(),
        ["c", "b"]
    );
    let resolved = store
        .resolve_report(&recent[1].id, "dismiss")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.resolution.as_deref(), Some("dismiss"));
    assert!(
        store
            .resolve_report(&recent[1].id, "ban")
            .await
            .unwrap()
            .is_none(),
        "resolved once"
    );
    let open = store
        .list_reports(Some("open".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 3);
    assert!(open.iter().all(|r| r.id != recent[1].id));
    let next = store
        .list_reports(None, Some(page[1].id.clone()), 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 2, "older than b: a's two");
    assert_eq!(
        store
            .delete_reports_before(now - Duration::days(30), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.list_reports(None, None, 10).await.unwrap().len(), 3);
    assert!(
        store
            .reports_about("t", now - Duration::days(100))
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != old.id)
    );
}

/// An account's standing is kept, replaced, and goes with the account.
async fn standing(store: &dyn UserStore) {
    use tandem::store::Standing;
    let u = store.create_user(new_user("Standing", None)).await.unwrap();
    assert_eq!(store.standing_of(&u.id).await.unwrap(), None);
    let at = Utc::now();
    for score in [85, 80] {
        store
            .put_standing(&u.id, Standing { score, at })
            .await
            .unwrap();
    }
    let got = store.standing_of(&u.id).await.unwrap().unwrap();
    assert_eq!(got.score, 80);
    assert!((got.at - at).num_milliseconds().abs() <= 1);
    store.delete_users(vec![u.id.clone()]).await.unwrap();
    assert_eq!(store.standing_of(&u.id).await.unwrap(), None);
}

/// What matching reads in one call is what the three reads give: blocks,
/// standing and the count of open reports (a resolved one does not count).
async fn matching_record(store: &dyn UserStore) {
    use tandem::store::{MatchingRecord, Report, Standing, new_id};
    let u = store.create_user(new_user("Matched", None)).await.unwrap();
    assert_eq!(
        store.matching_record(&u.id).await.unwrap(),
        MatchingRecord::default(),
        "nothing on record"
    );
    store.add_block(&u.id, "blocked-1").await.unwrap();
    store.add_block(&u.id, "blocked-2").await.unwrap();
    let at = Utc::now();
    store
        .put_standing(&u.id, Standing { score: 70, at })
        .await
        .unwrap();
    let report = |reporter: &str| Report {
        id: new_id(),
        reporter: reporter.into(),
        target: u.id.clone(),
        reason: "spam".into(),
        details: None,
        room_id: None,
        evidence: vec![],
        created_at: at,
        status: "open".into(),
        resolution: None,
    };
    let (first, second) = (report("r1"), report("r2"));
    store.insert_report(first.clone()).await.unwrap();
    store.insert_report(second).await.unwrap();
    store.insert_report(report("r3")).await.unwrap();
    store.resolve_report(&first.id, "dismiss").await.unwrap();
    let mut got = store.matching_record(&u.id).await.unwrap();
    got.blocks.sort();
    assert_eq!(got.blocks, ["blocked-1", "blocked-2"]);
    assert_eq!(got.standing.map(|s| s.score), Some(70));
    assert_eq!(got.open_reports, 2, "two open, one resolved");
    store.delete_users(vec![u.id.clone()]).await.unwrap();
}

/// Ban records replace each other by subject and survive their end (the
/// next ban escalates from them); the audit log pages newest first.
async fn bans_and_audit(store: &dyn UserStore) {
    use tandem::safety::rules::{ban_records, in_force, lift_records};
    let now = Utc::now();
    let hour = std::time::Duration::from_secs(3600);
    let records = ban_records("u1", vec!["device:d1".into()], hour, "spam", 1, now);
    store.put_bans(records).await.unwrap();
    let subjects = || vec!["user:u1".to_string(), "device:d1".into(), "ip:none".into()];
    let got = store.bans_of(subjects()).await.unwrap();
    assert_eq!(got.len(), 2);
    let user = got.iter().find(|b| b.subject == "user:u1").unwrap().clone();
    assert_eq!(user.covers, ["device:d1"]);
    assert_eq!(user.reason, "spam");
    assert_eq!((user.count, user.duration_s), (1, 3600));
    assert!(
        (user.until - (now + Duration::hours(1)))
            .num_milliseconds()
            .abs()
            <= 1
    );
    assert!(in_force(&got, now).is_some());
    store.put_bans(lift_records(&user, now)).await.unwrap();
    let got = store.bans_of(subjects()).await.unwrap();
    assert_eq!(got.len(), 2, "kept after the ban ends");
    assert!(in_force(&got, now + Duration::milliseconds(1)).is_none());
    assert!(store.bans_of(vec![]).await.unwrap().is_empty());

    for i in 0..5 {
        store
            .append_audit(tandem::store::AuditEntry {
                id: tandem::store::new_id(),
                at: now,
                actor: "admin".into(),
                action: format!("a{i}"),
                target: Some("u1".into()),
                detail: serde_json::json!({ "n": i }),
            })
            .await
            .unwrap();
    }
    let page = store.audit_log(None, 3).await.unwrap();
    let actions: Vec<_> = page.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["a4", "a3", "a2"]);
    assert_eq!(page[0].detail, serde_json::json!({ "n": 4 }));
    let rest = store.audit_log(Some(page[2].id.clone()), 10).await.unwrap();
    let actions: Vec<_> = rest.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["a1", "a0"]);
}

/// Guests idle past the TTL go with their tokens and devices; registered
/// accounts and guests online now stay. Time is simulated: activity is
/// stamped in the past and sweeps run at chosen instants.
async fn guest_expiry(store: &dyn UserStore) {
    use tandem::presence::{MemoryPresence, Presence, SessionUser};
    use tandem::store::expiry::sweep_guests;
    let ttl = std::time::Duration::from_secs(7 * 86_400);
    let now = Utc::now();
    let presence = MemoryPresence::default();
    let make = |name: &str| new_user(name, None);
    let old = store.create_user(make("OldGuest")).await.unwrap();
    let recent = store.create_user(make("RecentGuest")).await.unwrap();
    let never = store.create_user(make("NeverSeen")).await.unwrap();
    let online = store.create_user(make("OnlineGuest")).await.unwrap();
    let member = store
        .create_user(new_user("Member", Some("member@example.com")))
        .await
        .unwrap();
    store
        .set_last_seen(&old.id, now - Duration::days(8))
        .await
        .unwrap();
    store
        .set_last_seen(&recent.id, now - Duration::days(1))
        .await
        .unwrap();
    store
        .set_last_seen(&online.id, now - Duration::days(30))
        .await
        .unwrap();
    store
        .set_last_seen(&member.id, now - Duration::days(100))
        .await
        .unwrap();
    presence
        .connect(
            &SessionUser {
                id: online.id.clone(),
                username: online.username.clone(),
                is_guest: true,
            },
            "sid-1",
        )
        .await
        .unwrap();
    for (hash, user) in [("old-token", &old.id), ("member-token", &member.id)] {
        let rec = RefreshRecord {
            user_id: user.clone(),
            expires_at: now + Duration::days(30),
            ip: None,
        };
        store.insert_refresh(hash, rec).await.unwrap();
    }
    store.add_block(&old.id, &member.id).await.unwrap();
    store
        .upsert_device(Device {
            user_id: old.id.clone(),
            device_id: "phone".into(),
            user_agent: None,
            ip: None,
            last_seen: now,
        })
        .await
        .unwrap();

    let removed = sweep_guests(store, &presence, ttl, now).await.unwrap();
    assert_eq!(removed, 1, "only the guest idle for 8 days");
    assert!(store.user_by_id(&old.id).await.unwrap().is_none());
    assert!(store.take_refresh("old-token").await.unwrap().is_none());
    assert!(store.devices_of(&old.id).await.unwrap().is_empty());
    assert!(store.blocks_of(&old.id).await.unwrap().is_empty());
    for u in [&recent, &never, &online, &member] {
        assert!(
            store.user_by_id(&u.id).await.unwrap().is_some(),
            "{}",
            u.username
        );
    }
    // The online guest was not removed but stamped as seen now.
    assert!(last_seen(store, &online.id).await >= now - Duration::seconds(1));
    // Its name is free again.
    let again = store.create_user(make("oldguest")).await.unwrap();

    // Eight days on: every guest idle since is gone, the member stays.
    let later = now + Duration::days(8);
    presence.disconnect(&online.id, "sid-1").await.unwrap();
    let removed = sweep_guests(store, &presence, ttl, later).await.unwrap();
    assert!(removed >= 4, "{removed}");
    for u in [&recent, &never, &online, &again] {
        assert!(
            store.user_by_id(&u.id).await.unwrap().is_none(),
            "{}",
            u.username
        );
    }
    assert!(store.user_by_id(&member.id).await.unwrap().is_some());
    assert!(store.take_refresh("member-token").await.unwrap().is_some());
    assert_eq!(store.count_users().await.unwrap().guests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("tandem.redb");
    let store = Arc::new(EmbeddedStore::open(&path).await.unwrap());
    behaviour(store.clone()).await;
    let alice = store
        .user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    // Records matching reads, one of each kind for three users.
    let (blocker, rated) = (alice.id.clone(), "rated-user");
    store.add_block(&blocker, "someone-else").await.unwrap();
    store
        .put_standing(
            rated,
            tandem::store::Standing {
                score: 40,
                at: Utc::now(),
            },
        )
        .await
        .unwrap();
    drop(store);
    // Everything survives reopening the file, and the store knows again
    // who has records (it answers the others without reading).
    let reopened = EmbeddedStore::open(&path).await.unwrap();
    let mut blocks = reopened.matching_record(&blocker).await.unwrap().blocks;
    blocks.sort();
    assert_eq!(blocks, ["other", "someone-else"], "alice's two blocks");
    assert_eq!(
        reopened
            .matching_record(rated)
            .await
            .unwrap()
            .standing
            .map(|s| s.score),
        Some(40)
    );
    assert_eq!(
        reopened.matching_record("t").await.unwrap().open_reports,
        1,
        "the reports suite left one open report about t"
    );
    assert_eq!(reopened.user_by_id(&alice.id).await.unwrap(), Some(alice));
    assert_eq!(
        reopened.create_user(new_user("alice", None)).await,
        Err(StoreError::Conflict("username"))
    );
}

#[tokio::test]
async fn embedded_store_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.redb");
    let _first = EmbeddedStore::open(&path).await.unwrap();
    match EmbeddedStore::open(&path).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("tandem.redb"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second open of the same file must fail"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_store() {
    let Ok(uri) = std::env::var("TANDEM_TEST_MONGODB_URI") else {
        assert!(
            std::env::var("TANDEM_REQUIRE_MONGODB").is_err(),
            "TANDEM_REQUIRE_MONGODB is set but TANDEM_TEST_MONGODB_URI is not"
        );
        eprintln!(
            "mongodb_store: TANDEM_TEST_MONGODB_URI unset; run scripts/test for the MongoDB run"
        );
        return;
    };
    let db = format!("tandem_suite_{}", std::process::id());
    let store = Arc::new(MongoStore::connect(&uri, &db).await.unwrap());
    behaviour(store).await;
}

#[tokio::test]
async fn mongodb_unreachable_is_unavailable() {
    // Nothing listens on port 9 of loopback: every call reports Unavailable, quickly.
    let store = MongoStore::connect("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300", "x")
        .await
        .unwrap();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store
            .create_user(new_user("bob", Some("bob@example.com")))
            .await,
        Err(StoreError::Unavailable(_))
    ));
}
