//! The in-memory store keeps the whole store contract.

postie_store::store_contract_tests!(|| ((), postie_store::MemoryStore::new()));
