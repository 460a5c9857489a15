//! Prints every state row of a goatview file, and its counts, as text: two files hold the
//! same state exactly when their dumps are equal (`dump a.redb | sha256sum`).
fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: dump FILE"));
    // Store::open would create a missing file and dump nothing.
    assert!(path.is_file(), "no such file: {}", path.display());
    let store = goatview::store::Store::open(&path).expect("open");
    let r = store.read().expect("read");
    for line in goatview::state::tables::dump_state(&r).expect("dump") {
        println!("{line}");
    }
    for c in [goatview::store::EVENTS_APPLIED, goatview::store::DEAD_LETTERS] {
        println!("counter {c} {}", store.counter(c).expect("counter"));
    }
}
