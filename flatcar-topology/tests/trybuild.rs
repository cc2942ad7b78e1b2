//! Malformed address literals fail to compile with a message quoting them;
//! valid ones compile. `cargo check` catches them too (named const items).

#[test]
fn address_literals() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
