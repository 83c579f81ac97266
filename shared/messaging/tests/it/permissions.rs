//! Each service's NATS user, on a nats-server of its own configured with the generated
//! `authorization` block: the wallet's credentials can publish the wallet's events and read its
//! own consumers, and cannot publish a seat event, read another service's consumer, make a
//! consumer of its own on another stream, or listen to another service's subjects.

use async_nats::jetstream;
use contracts::{Namespace, Stream};
use futures::StreamExt;
use messaging::{Bus, definitions, permissions};
use platform::{Secret, config::NatsLogin};
use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

const SERVICES: [&str; 9] = [
    "queue",
    "concert",
    "seat",
    "reservation",
    "wallet",
    "wallet-history",
    "ranking",
    "external-data",
    "dead-letters",
];

/// A nats-server on a free port with JetStream and the generated users; killed on drop.
struct Server {
    child: Child,
    url: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn password(user: &str) -> String {
    format!("pw-of-{user}")
}

fn login(user: &str) -> NatsLogin {
    NatsLogin { user: user.to_owned(), password: Secret::new(password(user)) }
}

async fn start(ns: &Namespace) -> Server {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(format!("{root}/scripts/nats-server")).arg("--print-path").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = TempDir(std::env::temp_dir().join(format!("ticketing-nats-perm-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let conf = format!(
        "listen: 127.0.0.1:{port}\nserver_name: permissions\njetstream {{ store_dir: \"{}\" }}\n{}",
        dir.0.join("js").display(),
        permissions::authorization(ns, &SERVICES).unwrap()
    );
    let conf_path = dir.0.join("nats.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(&conf_path).stdout(Stdio::null()).stderr(Stdio::null());
    for user in SERVICES.iter().copied().chain([permissions::ADMIN]) {
        cmd.env(permissions::password_variable(user), password(user));
    }
    let child = cmd.spawn().unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, url, _dir: dir }
}

/// A JetStream context that gives up on an answer after a second (a refused request gets none).
fn impatient(bus: &Bus) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(Duration::from_secs(1)).build(bus.client.clone())
}

async fn messages_in(admin: &Bus, stream: Stream) -> u64 {
    let mut s = admin.js.get_stream(admin.ns.stream(stream)).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test]
async fn the_wallets_nats_user_publishes_and_reads_its_own_subjects_alone() {
    let ns = Namespace::new(&format!("perm{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).unwrap();
    let server = start(&ns).await;
    let admin = Bus::connect_as(&server.url, ns.clone(), Some(&login(permissions::ADMIN))).await.unwrap();
    definitions::apply(&admin, 1).await.unwrap();
    let wallet = Bus::connect_as(&server.url, ns.clone(), Some(&login("wallet"))).await.unwrap();
    let js = impatient(&wallet);

    // Its own events and dead letters: stored.
    js.publish(ns.subject("wallet.payment_succeeded"), "{}".into()).await.unwrap().await.unwrap();
    js.publish(ns.dlq_subject("wallet"), "{}".into()).await.unwrap().await.unwrap();
    definitions::require_streams(&wallet).await.unwrap();
    // A seat event, or another service's dead letter: refused, nothing stored.
    let forged = js.publish(ns.subject("seat.reserved"), "{}".into()).await;
    assert!(forged.is_err() || forged.unwrap().await.is_err(), "a seat event published as the wallet");
    let forged = js.publish(ns.dlq_subject("seat"), "{}".into()).await;
    assert!(forged.is_err() || forged.unwrap().await.is_err(), "a seat dead letter published as the wallet");
    assert_eq!(messages_in(&admin, Stream::Seat).await, 0);
    assert_eq!(messages_in(&admin, Stream::Wallet).await, 1);
    assert_eq!(messages_in(&admin, Stream::Dlq).await, 1);

    // Its own consumer: pulled and acknowledged.
    admin
        .js
        .publish(ns.subject("reservation.0.payment_requested"), "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let own = definitions::declared_consumers(ns.partitions())
        .unwrap()
        .into_iter()
        .find(|c| c.service == "wallet")
        .unwrap();
    let consumer = own.ensure(&wallet).await.unwrap();
    let mut batch =
        consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.unwrap();
    let mut pulled = 0;
    while let Some(msg) = batch.next().await {
        msg.unwrap().ack().await.unwrap();
        pulled += 1;
    }
    assert!(pulled >= 1, "the wallet reads its own consumer");

    // Another service's consumer, or a consumer of its own making on another stream: refused.
    let theirs = definitions::declared_consumers(ns.partitions())
        .unwrap()
        .into_iter()
        .find(|c| c.service == "seat" && c.stream == Stream::Reservation)
        .unwrap();
    let reservations = js.get_stream(ns.stream(Stream::Reservation)).await.unwrap();
    let read = reservations.get_consumer::<jetstream::consumer::pull::Config>(&theirs.name()).await;
    assert!(read.is_err(), "the wallet opened the seat service's consumer");
    let seat_stream = js.get_stream(ns.stream(Stream::Seat)).await.unwrap();
    let made = seat_stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("wallet__SEAT".into()),
            ..Default::default()
        })
        .await;
    assert!(made.is_err(), "the wallet made a consumer on the seat stream");

    // Core subjects: its own replicas' notices reach it; another service's subjects do not.
    let mut own_notices = wallet.client.subscribe(ns.subject("internal.wallet.changed")).await.unwrap();
    let mut eavesdrop = wallet.client.subscribe(ns.subject("seat.>")).await.unwrap();
    let mut their_notices = wallet.client.subscribe(ns.subject("internal.reservation.>")).await.unwrap();
    wallet.client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for subject in ["internal.wallet.changed", "seat.reserved", "internal.reservation.changed"] {
        admin.client.publish(ns.subject(subject), "x".into()).await.unwrap();
    }
    admin.client.flush().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(2), own_notices.next()).await.unwrap().is_some());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), eavesdrop.next()).await.is_err(),
        "heard seat events"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), their_notices.next()).await.is_err(),
        "heard reservation notices"
    );
}

#[tokio::test]
async fn the_replayer_reads_replays_and_discards_dead_letters_and_makes_no_consumer() {
    let ns = Namespace::new(&format!("perm{}", &uuid::Uuid::new_v4().simple().to_string()[..8])).unwrap();
    let server = start(&ns).await;
    let admin = Bus::connect_as(&server.url, ns.clone(), Some(&login(permissions::ADMIN))).await.unwrap();
    definitions::apply(&admin, 1).await.unwrap();
    let replayer =
        Bus::connect_as(&server.url, ns.clone(), Some(&login(permissions::REPLAYER))).await.unwrap();

    // Two dead letters of the seat service, as its consumer writes them.
    for n in 1..=2u64 {
        let letter = contracts::DeadLetter {
            original_subject: ns.subject("reservation.0.requested"),
            stream_sequence: n,
            event_id: Some(format!("e{n}")),
            event_type: Some("ReservationRequested".into()),
            consumer: "seat__RESERVATION__requested".into(),
            deliveries: 8,
            reason: "test".into(),
            failed_at: chrono::Utc::now(),
            original_headers: Vec::new(),
            original_body: "e30=".into(),
        };
        let body = serde_json::to_vec(&letter).unwrap();
        admin.js.publish(ns.dlq_subject("seat"), body.into()).await.unwrap().await.unwrap();
    }
    let letters = messaging::dlq::list(&replayer, 10).await.unwrap();
    assert_eq!(letters.len(), 2);
    // Replayed to the reservation stream, though it is not the replayer's; the other discarded.
    messaging::dlq::replay(&replayer, letters[0].0).await.unwrap();
    messaging::dlq::discard(&replayer, letters[1].0).await.unwrap();
    assert_eq!(messages_in(&admin, Stream::Reservation).await, 1);
    assert_eq!(messaging::dlq::count(&admin).await.unwrap(), 0);

    // No consumer, no stream change.
    let js = impatient(&replayer);
    let reservations = js.get_stream(ns.stream(Stream::Reservation)).await.unwrap();
    let made = reservations
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("dead-letters__RESERVATION".into()),
            ..Default::default()
        })
        .await;
    assert!(made.is_err(), "the replayer made a consumer");
    assert!(js.delete_stream(ns.stream(Stream::Seat)).await.is_err(), "the replayer deleted a stream");
}
