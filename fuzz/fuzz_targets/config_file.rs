#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postie_fuzz::config_file(data));
