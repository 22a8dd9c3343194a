#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postie_fuzz::smtp_data_round_trip(data));
