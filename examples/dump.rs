//! Prints every state row of a goatview file, and its counts, as text.
fn main() {
    let path = std::env::args().nth(1).expect("usage: dump FILE");
    let store = goatview::store::Store::open(std::path::Path::new(&path)).expect("open");
    let r = store.read().expect("read");
    for line in goatview::state::tables::dump_state(&r).expect("dump") {
        println!("{line}");
    }
    for c in [goatview::store::EVENTS_APPLIED, goatview::store::DEAD_LETTERS] {
        println!("counter {c} {}", store.counter(c).expect("counter"));
    }
}
