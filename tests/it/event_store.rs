//! The ClickHouse event store on a real ClickHouse 18.16: round trips, first-wins writes, and reads that count an
//! identity once even when a replay put it into the tables twice (before any merge). These calls fail on 18.16 if the
//! client's schema validation is switched back on (it asks for formats 18.16 does not have).

use aggregate::clickhouse_store::{ClickHouseStore, Enrichment};
use aggregate::recent_identities::{Lookup, RecentIdentities};
use aggregate::{EventQuery, EventStore, ScanFilter, Written};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::event::Event;
use testkit::ClickHouseServer;
use uuid::Uuid;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(tx: &str, sub: &str, props: &str, ingested: &str) -> Event {
    Event {
        organization_id: Uuid::from_u128(0xC0FFEE),
        external_subscription_id: sub.into(),
        transaction_id: tx.into(),
        code: "calls".into(),
        timestamp: t("2024-05-01T10:00:00.123456Z"),
        properties: props.into(),
        precise_total_amount_cents: Some("12345678901234.123456789".parse().unwrap()),
        ingested_at: t(ingested),
    }
}

async fn store() -> (ClickHouseStore, &'static ClickHouseServer, String) {
    let server = ClickHouseServer::shared();
    let database = server.database();
    ClickHouseStore::migrate(&server.url(), &database).await.expect("migrate");
    ClickHouseStore::migrate(&server.url(), &database).await.expect("migrations are idempotent");
    (ClickHouseStore::new(&server.url(), &database), server, database)
}

/// Puts `e` into `table` as the store would, but behind its back: no dedup check, the other table untouched.
fn insert_behind_the_store(server: &ClickHouseServer, db: &str, table: &str, e: &Event) {
    let (last_column, last) = if table == "events_raw" { ("version", "0") } else { ("group_key", "''") };
    server
        .execute(&format!(
            "INSERT INTO {db}.{table} (organization_id, external_subscription_id, transaction_id, code, timestamp_us, \
             properties, ingested_us, {last_column}) VALUES ('{}', '{}', '{}', '{}', {}, '{}', {}, {last})",
            e.organization_id,
            e.external_subscription_id,
            e.transaction_id,
            e.code,
            e.timestamp.timestamp_micros(),
            e.properties,
            e.ingested_at.timestamp_micros(),
        ))
        .unwrap();
}

fn scan_all() -> ScanFilter {
    ScanFilter {
        organization_id: Uuid::from_u128(0xC0FFEE),
        external_subscription_ids: vec![],
        codes: vec![],
        from: t("2000-01-01T00:00:00Z"),
        to: t("2100-01-01T00:00:00Z"),
    }
}

#[tokio::test]
async fn events_round_trip_and_the_first_write_wins() {
    let (store, server, db) = store().await;
    let first = event("tx-1", "sub-1", r#"{"n":"1","s":"é \"q\""}"#, "2024-05-01T10:00:01Z");
    let again = event("tx-1", "sub-1", r#"{"n":"2"}"#, "2024-05-01T10:00:02Z");
    let other_sub = event("tx-1", "sub-2", r#"{"n":"3"}"#, "2024-05-01T10:00:03Z");
    let written = store.write(&[first.clone(), again.clone(), other_sub.clone()]).await.unwrap();
    assert_eq!(written, Written { new: 2, duplicates: vec![1] }, "the second sending of tx-1 is a duplicate");
    let written = store.write(&[again]).await.unwrap();
    assert_eq!(written, Written { new: 0, duplicates: vec![0] }, "an identity already stored is skipped");
    // The sink reading a record again after a crash (same receipt time) is a replay, not a duplicate.
    assert_eq!(store.write(std::slice::from_ref(&first)).await.unwrap(), Written::default());
    let mut scanned = store.scan(&scan_all()).await.unwrap();
    scanned.sort_by(|a, b| a.external_subscription_id.cmp(&b.external_subscription_id));
    assert_eq!(scanned, vec![first.clone(), other_sub]);
    assert_eq!(store.find(first.organization_id, "tx-1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find(Uuid::from_u128(1), "tx-1").await.unwrap(), None);

    // The sink's enrichment lands in events_enriched as Decimal(38, 9).
    let enriched = event("tx-2", "sub-1", r#"{"n":"2.5"}"#, "2024-05-01T10:00:04Z");
    let x = Enrichment { value: Some("2.123456789".parse::<Decimal>().unwrap()), group_key: "region=eu".into() };
    assert_eq!(store.write_enriched(&[enriched], &[x]).await.unwrap().new, 1);
    let row = server
        .execute(&format!("SELECT toString(value), group_key FROM {db}.events_enriched WHERE transaction_id = 'tx-2'"))
        .unwrap();
    assert_eq!(row.trim(), "2.123456789\tregion=eu");
}

/// A replay that raced past the write's check (or a crash between the two inserts) leaves the same identity twice in
/// the tables; reads still return it once, the first ingested copy.
#[tokio::test]
async fn reads_count_an_identity_once_before_any_merge() {
    let (store, server, db) = store().await;
    let first = event("tx-1", "sub-1", r#"{"n":"1"}"#, "2024-05-01T10:00:01Z");
    store.write(std::slice::from_ref(&first)).await.unwrap();
    let org = first.organization_id;
    // A later copy with other content.
    let later = Event {
        properties: r#"{"n":"9"}"#.into(),
        ingested_at: first.ingested_at + chrono::Duration::seconds(5),
        ..first.clone()
    };
    for table in ["events_raw", "events_enriched"] {
        insert_behind_the_store(server, &db, table, &later);
    }
    let raw = server.execute(&format!("SELECT count() FROM {db}.events_raw")).unwrap();
    assert_eq!(raw.trim(), "2", "the double is really there");
    assert_eq!(store.scan(&scan_all()).await.unwrap(), vec![first.clone()]);
    assert_eq!(store.find(org, "tx-1").await.unwrap(), Some(first.clone()));
    let (page, total) =
        store.list(&EventQuery { organization_id: org, limit: 10, offset: 0, ..EventQuery::default() }).await.unwrap();
    assert_eq!((page, total), (vec![first], 1));
    // A write of the identity after the double changes nothing either.
    assert_eq!(store.write(&[event("tx-1", "sub-1", "{}", "2024-05-02T00:00:00Z")]).await.unwrap().new, 0);
}

/// The check against stored events reads a day either side of each event's timestamp: a retry (same timestamp, or
/// one a server gave a little later) is found; a copy days apart is stored, and reads count it once in any period
/// that holds both.
#[tokio::test]
async fn the_stored_check_reaches_a_day_around_the_event() {
    let (store, _, _) = store().await;
    let first = event("tx-9", "sub-1", "{}", "2024-05-01T10:00:00Z");
    assert_eq!(store.write(std::slice::from_ref(&first)).await.unwrap().new, 1);
    let mut retry = event("tx-9", "sub-1", "{}", "2024-05-01T10:05:00Z");
    retry.timestamp = first.timestamp + chrono::Duration::hours(20);
    assert_eq!(store.write(&[retry]).await.unwrap(), Written { new: 0, duplicates: vec![0] });
    let mut far = event("tx-9", "sub-1", "{}", "2024-05-01T10:06:00Z");
    far.timestamp = first.timestamp + chrono::Duration::days(3);
    assert_eq!(store.write(std::slice::from_ref(&far)).await.unwrap().new, 1);
    let mut both = scan_all();
    both.external_subscription_ids = vec!["sub-1".into()];
    assert_eq!(store.scan(&both).await.unwrap(), vec![first], "one event in a window holding both copies");
}

/// `events_enriched` decides what is stored. A raw row alone (a crash between the two inserts) does not make its
/// identity stored, even for a replay of its very record; a copy only `events_enriched` holds (a merge of
/// `events_raw` kept another copy, days away) is found within its reach, and only there.
#[tokio::test]
async fn the_stored_check_settles_half_written_identities() {
    let (store, server, db) = store().await;
    let half = event("half", "sub-k", "{}", "2024-05-01T10:00:01Z");
    insert_behind_the_store(server, &db, "events_raw", &half);
    assert_eq!(
        store.write(std::slice::from_ref(&half)).await.unwrap(),
        Written { new: 1, duplicates: vec![] },
        "the replay of the half-written record is written whole"
    );
    let mut sub = scan_all();
    sub.external_subscription_ids = vec!["sub-k".into()];
    assert_eq!(store.scan(&sub).await.unwrap(), vec![half.clone()]);
    let retry = Event { ingested_at: half.ingested_at + chrono::Duration::seconds(1), ..half.clone() };
    assert_eq!(store.write(&[retry]).await.unwrap(), Written { new: 0, duplicates: vec![0] });

    // events_raw holds a copy three days before the one events_enriched holds.
    let moved = Event { transaction_id: "moved".into(), ..half.clone() };
    let moved_early = Event { timestamp: half.timestamp - chrono::Duration::days(3), ..moved.clone() };
    insert_behind_the_store(server, &db, "events_raw", &moved_early);
    insert_behind_the_store(server, &db, "events_enriched", &moved);
    let again = Event { ingested_at: half.ingested_at + chrono::Duration::seconds(2), ..moved };
    assert_eq!(
        store.write(&[again]).await.unwrap(),
        Written { new: 0, duplicates: vec![0] },
        "found in events_enriched"
    );
    // At the raw copy's time events_enriched has nothing: that copy was half written, and the event is new.
    let early = Event { ingested_at: half.ingested_at + chrono::Duration::seconds(3), ..moved_early };
    assert_eq!(store.write(&[early]).await.unwrap().new, 1);
}

/// The sink's memory of stored identities ([`RecentIdentities`]) gives the answers the store check gives: it loads
/// a subscription's recent identities once, then answers for events of the last hour without a query; older events
/// still ask the store. A writer it does not know of slips past it (that is why the sink clears it after a
/// rebalance or a failed flush), and reads still count such an identity once. A subscription that does not fit is
/// left to the store.
#[tokio::test]
async fn remembered_identities_answer_as_the_store_does() {
    let (store, _, _) = store().await;
    // Stores keep microseconds.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let at = |tx: &str, timestamp: DateTime<Utc>, ingested: DateTime<Utc>| Event {
        timestamp,
        ingested_at: ingested,
        ..event(tx, "sub-r", "{}", "2024-05-01T10:00:00Z")
    };
    let plain = |events: &[Event]| vec![Enrichment::default(); events.len()];
    let reach = aggregate::clickhouse_store::DEDUP_REACH_MICROS;
    let mut recent = RecentIdentities::new(reach, 1_000);

    // Stored before this sink started: one live event, one from two days ago.
    let live = at("live", now - chrono::Duration::minutes(5), now - chrono::Duration::minutes(5));
    let old = at("old", now - chrono::Duration::days(2), now - chrono::Duration::days(2));
    assert_eq!(store.write(&[live.clone(), old.clone()]).await.unwrap().new, 2);

    let retry_live = Event { ingested_at: now, ..live.clone() };
    let retry_old = Event { ingested_at: now, ..old.clone() };
    let fresh = at("fresh", now, now);
    let batch = [retry_live.clone(), fresh.clone(), retry_old, Event { ingested_at: now, ..fresh.clone() }];
    let written = store.write_enriched_knowing(&batch, &plain(&batch), Some(&mut recent)).await.unwrap();
    assert_eq!(written, Written { new: 1, duplicates: vec![0, 2, 3] });
    let from = recent.complete_from(live.organization_id, "sub-r");
    assert!(from.is_some(), "the subscription was loaded");
    assert_eq!(recent.len(), 2, "the live event found in the store, and the fresh one just stored");
    assert_eq!(
        recent.lookup(from, live.organization_id, "sub-r", "fresh", fresh.timestamp.timestamp_micros()),
        Lookup::Stored { ingested_us: now.timestamp_micros() }
    );
    // A replay of the record the fresh event came in (same receipt time) stores nothing and is no duplicate.
    let replay = [fresh.clone()];
    assert_eq!(
        store.write_enriched_knowing(&replay, &plain(&replay), Some(&mut recent)).await.unwrap(),
        Written::default()
    );

    // Another writer it does not know of: stored twice, read once.
    let behind = at("behind", now, now);
    assert_eq!(store.write(std::slice::from_ref(&behind)).await.unwrap().new, 1);
    let again = [Event { ingested_at: now + chrono::Duration::seconds(1), ..behind.clone() }];
    assert_eq!(store.write_enriched_knowing(&again, &plain(&again), Some(&mut recent)).await.unwrap().new, 1);
    let mut sub = scan_all();
    sub.external_subscription_ids = vec!["sub-r".into()];
    let mut read = store.scan(&sub).await.unwrap();
    read.sort_by(|a, b| a.transaction_id.cmp(&b.transaction_id));
    let ids: Vec<&str> = read.iter().map(|e| e.transaction_id.as_str()).collect();
    assert_eq!(ids, ["behind", "fresh", "live", "old"]);
    assert_eq!(read[0], behind, "the first ingested copy is the one read");

    // Cleared, it asks the store again and finds what the other writer stored.
    recent.clear();
    let third = [Event { ingested_at: now + chrono::Duration::seconds(2), ..behind }];
    assert_eq!(
        store.write_enriched_knowing(&third, &plain(&third), Some(&mut recent)).await.unwrap(),
        Written { new: 0, duplicates: vec![0] }
    );

    // A memory too small for the subscription's recent identities (three) does not load it: the store answers.
    let mut small = RecentIdentities::with_filter(reach, 2, 0);
    let batch = [Event { ingested_at: now + chrono::Duration::seconds(3), ..fresh.clone() }, at("newer", now, now)];
    let written = store.write_enriched_knowing(&batch, &plain(&batch), Some(&mut small)).await.unwrap();
    assert_eq!(written, Written { new: 1, duplicates: vec![0] });
    assert_eq!(small.complete_from(live.organization_id, "sub-r"), None, "not loaded");
    assert!(small.len() <= 2);

    // With a filter behind the same small map (two generations of two), the subscription's four identities are
    // loaded: two exactly, two in the filter. A retry of any of them is still found (a filter "maybe" asks the
    // store), and a new event is stored.
    let mut filtered = RecentIdentities::with_filter(reach, 2, 2);
    let later = now + chrono::Duration::seconds(4);
    let batch = [
        Event { ingested_at: later, ..fresh.clone() },
        Event { ingested_at: later, ..at("newer", now, now) },
        Event { ingested_at: later, ..live.clone() },
        at("newest", now, later),
    ];
    let written = store.write_enriched_knowing(&batch, &plain(&batch), Some(&mut filtered)).await.unwrap();
    assert_eq!(written, Written { new: 1, duplicates: vec![0, 1, 2] });
    assert!(filtered.complete_from(live.organization_id, "sub-r").is_some(), "loaded");
    assert_eq!((filtered.len(), filtered.filtered()), (2, 3), "the new event went to the filter too");
    let replay = [at("newest", now, later)];
    assert_eq!(
        store.write_enriched_knowing(&replay, &plain(&replay), Some(&mut filtered)).await.unwrap(),
        Written::default(),
        "a replay of its record (same receipt) is no duplicate, as the store tells"
    );
}
