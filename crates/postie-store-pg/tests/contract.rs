//! The PostgreSQL store keeps the whole store contract, on a real PostgreSQL 15 started for
//! this test binary, each case in a fresh database.

mod cluster;

fn pg_store() -> (cluster::TestDb, postie_store_pg::PgStore) {
    let db = cluster::TestDb::new();
    let store = db.store(postie_store_pg::PgOptions::default());
    (db, store)
}

postie_store::store_contract_tests!(pg_store);
