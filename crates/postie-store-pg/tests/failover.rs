//! The store across a failover: a primary with a synchronous replica, the primary's
//! processes killed with SIGKILL, the replica promoted; a store configured with both hosts
//! drops its broken connections and carries on with the new primary by itself.

// Only the replicated cluster of the support is used here.
#[allow(dead_code)]
mod cluster;

use std::sync::Arc;

use cluster::ReplicatedCluster;
use postie_store::View;
use postie_store::{Delivery, MailStore, Maildrop, Quota, Recipient, Update};
use postie_store_pg::{PgOptions, PgStore};

fn delivery(n: usize) -> Delivery {
    Delivery {
        message: Arc::new(format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes()),
        recipients: vec![Recipient {
            user: "alice".into(),
            headers: b"Delivered-To: alice\n".to_vec(),
            quota: Quota::default(),
        }],
    }
}

#[test]
fn a_store_with_both_hosts_carries_on_with_the_promoted_replica() {
    let cluster = ReplicatedCluster::start();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = PgStore::new(cluster.config(), PgOptions::default());
            for n in 0..4 {
                for result in store.deliver(delivery(n)).await {
                    result.expect("delivered before the failover");
                }
            }
            // A session open across the failover, and pooled connections to the old primary.
            let session = store
                .open("alice", true, View::Normal)
                .await
                .expect("alice's maildrop");
            assert_eq!(session.messages().len(), 4);

            cluster.kill_primary();
            cluster.promote_replica();

            for n in 4..8 {
                for result in store.deliver(delivery(n)).await {
                    result.expect("delivered after the failover, on the new primary");
                }
            }
            session
                .quit(Update {
                    deleted: vec![0],
                    retrieved: vec![],
                    policy: postie_store::DeletePolicy::Expunge,
                })
                .await
                .expect("a session's QUIT applied on the new primary");
            let after = store
                .open("alice", true, View::Normal)
                .await
                .expect("alice's maildrop");
            assert_eq!(after.messages().len(), 7);
            let status = store.status().await.expect("the new primary");
            assert!(!status.read_only);
            assert!(
                status
                    .server
                    .ends_with(&cluster.replica_config().get_ports()[0].to_string()),
                "{status:?}"
            );
        });
}
