//! The physical host's nftables ruleset, from the model's zones and flows.
//!
//! [`build`] turns the cluster (its networks, VPN, VIPs and every [`Flow`],
//! declared, implied by VIPs and contributed by services) into a typed
//! [`Ruleset`]. The same value renders as `nft -f` text ([`Ruleset::to_text`])
//! and as the `nftables` crate's JSON schema ([`Ruleset::to_nftables`],
//! applied with `nft -j -f -` by [`apply`]); tests prove both load to the
//! same kernel ruleset.
//!
//! # Zones
//! * **LAN**, **VPN** and each **NAT network**: their CIDRs in the model
//!   ([`Cluster::endpoint_nets`]);
//! * **internet side**: every address that is none of those. The LAN router
//!   is not managed and port-forwards public ports to the web VIP, so
//!   internet traffic arrives *on the LAN* with public source addresses; the
//!   ruleset therefore judges by source address, not by interface.
//!
//! # Tables
//! Only two tables of our own, `inet microcloud` and `bridge microcloud`,
//! are replaced (`add table; delete table; add table …` in **one**
//! transaction); the ruleset is never flushed, so libvirt's tables stay.
//! If `nft` rejects any part, the transaction is aborted and the previous
//! ruleset stays in place.
//!
//! * `inet microcloud` / `input` (policy drop): established/related,
//!   loopback, ping from inside, WireGuard from anywhere (endpoint on the
//!   host), libvirt DNS/DHCP on the NAT bridges, and the flows to `Host`;
//!   the API ports never from the internet side.
//! * `inet microcloud` / `forward` (policy drop): established/related, no
//!   spoofed NAT/VPN sources, the API ports never from the internet side,
//!   then exactly the flows between LAN, VPN, NAT networks and the internet
//!   side (load balancers → masters is a flow like any other: the LBs reach
//!   the masters through their own NIC on the k8s bridge, and the rule also
//!   covers a routed path).
//! * `inet microcloud` / `postrouting` (nat): NAT networks masqueraded
//!   towards the internet side. libvirt defines them with forward mode
//!   `open`, so libvirt adds no rules and this ruleset is the only one.
//! * `bridge microcloud` / `forward`: the LAN bridge, where traffic to the
//!   VIPs is *switched*, not routed: from internet-side sources only the VIP
//!   ports that flows open to the internet pass, the API ports never.
//!
//! # Bridged traffic and the inet forward chain
//! Traffic switched between two ports of one bridge (LAN VM ↔ LAN VM, LB ↔
//! master on the k8s bridge, router → VIP) does **not** pass the inet
//! forward chain on a host without `br_netfilter`; there only the bridge
//! table sees it. With `br_netfilter` loaded and
//! `net.bridge.bridge-nf-call-iptables=1` (Docker, Kubernetes and many KVM
//! hosts; also the machine the tests run on) it *does* pass it, with the
//! bridge as input and output interface. The forward chain therefore
//! accepts switched traffic inside each bridge explicitly, so the ruleset
//! behaves the same either way; what the internet side may reach on the LAN
//! bridge is decided by the bridge table in both cases.

use crate::Error;
use flatcar_topology::{
    Cluster, Endpoint, Flow, IfName, KvmHost, MacAddr, NetworkKind, Port, PortRange, Proto,
    VpnEndpoint,
};
use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range, SetItem, CT,
};
use nftables::schema::{self, NfListObject, Nftables};
use nftables::stmt::{Match as NftMatch, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::{self, Write};

/// Name of our tables (`inet microcloud`, `bridge microcloud`).
pub const TABLE: &str = "microcloud";

/// nft comments are limited to 128 bytes.
const COMMENT_MAX: usize = 128;

/// Why a text cannot be an nftables name or comment (shown escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} is not {what}")]
pub struct NftTextError {
    /// The rejected text, escaped and shortened.
    pub text: String,
    /// What it should have been.
    pub what: &'static str,
}

fn nft_name(s: &str) -> Result<(), NftTextError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    ok.then_some(()).ok_or_else(|| NftTextError {
        text: flatcar_topology::text::shown(s),
        what: "an nftables name (a letter, then up to 63 letters, digits, '_' or '-')",
    })
}

fn comment_char(c: char) -> bool {
    (' '..='~').contains(&c) && c != '"' && c != '\\'
}

fn nft_comment(s: &str) -> Result<(), NftTextError> {
    let ok = !s.is_empty() && s.len() <= COMMENT_MAX && s.chars().all(comment_char);
    ok.then_some(()).ok_or_else(|| NftTextError {
        text: flatcar_topology::text::shown(s),
        what:
            "an nftables comment (1-128 printable ASCII characters, no double quote or backslash)",
    })
}

flatcar_topology::validated_string! {
    /// An nftables table or chain name: a letter, then letters, digits, `_`
    /// or `-`, at most 64 characters; needs no quoting in `nft` text or JSON.
    pub struct NftName;
    error = NftTextError;
    validate = nft_name;
}

flatcar_topology::validated_string! {
    /// A rule comment: 1–128 printable ASCII characters without a double
    /// quote or a backslash,
    /// so it cannot end the quoted comment or a line of the ruleset.
    ///
    /// ```
    /// use flatcar_net::ruleset::NftComment;
    /// assert!(NftComment::new("lan to host ssh").is_ok());
    /// assert!(NftComment::new("x\" accept; #").is_err());
    /// assert_eq!(NftComment::lossy("a\"b\nc").map(|c| c.to_string()), Some("abc".into()));
    /// ```
    pub struct NftComment;
    error = NftTextError;
    validate = nft_comment;
}

impl NftComment {
    /// A comment from any text: characters a comment cannot hold are
    /// dropped and it is cut to 128 bytes; `None` if nothing is left.
    pub fn lossy(text: &str) -> Option<NftComment> {
        let mut c: String = text.chars().filter(|&c| comment_char(c)).collect();
        c.truncate(COMMENT_MAX);
        (!c.is_empty()).then_some(NftComment(c))
    }
}

/// A table family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 and IPv6 (routed and local traffic).
    Inet,
    /// Switched traffic on bridges.
    Bridge,
}

impl Family {
    fn text(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
    fn nft(self) -> NfFamily {
        match self {
            Family::Inet => NfFamily::INet,
            Family::Bridge => NfFamily::Bridge,
        }
    }
}

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Packets to the host itself.
    Input,
    /// Packets the host routes (or switches, in the bridge family).
    Forward,
    /// Packets leaving (source NAT).
    Postrouting,
    /// Packets the host itself sends (in the bridge family: frames the
    /// bridge device sends out through a port).
    Output,
}

impl Hook {
    fn text(self) -> &'static str {
        match self {
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Postrouting => "postrouting",
            Hook::Output => "output",
        }
    }
    fn nft(self) -> NfHook {
        match self {
            Hook::Input => NfHook::Input,
            Hook::Forward => NfHook::Forward,
            Hook::Postrouting => NfHook::Postrouting,
            Hook::Output => NfHook::Output,
        }
    }
}

/// Chain type and its standard priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// `type filter … priority filter`.
    Filter,
    /// `type nat … priority srcnat`.
    SrcNat,
}

impl ChainKind {
    /// The numeric priority of the named one in `family` (`filter` is -200
    /// in the bridge family, 0 elsewhere; `srcnat` is 100).
    pub fn priority(self, family: Family) -> i32 {
        match (self, family) {
            (ChainKind::Filter, Family::Bridge) => -200,
            (ChainKind::Filter, Family::Inet) => 0,
            (ChainKind::SrcNat, Family::Bridge) => 300,
            (ChainKind::SrcNat, Family::Inet) => 100,
        }
    }
}

/// Default verdict of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Let packets no rule matched pass.
    Accept,
    /// Drop packets no rule matched.
    Drop,
}

/// `==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Matches when the value is in the set.
    Eq,
    /// Matches when the value is not in the set.
    Ne,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "",
            Op::Ne => "!= ",
        }
    }
    fn nft(self) -> Operator {
        match self {
            Op::Eq => Operator::EQ,
            Op::Ne => Operator::NEQ,
        }
    }
}

/// Connection tracking state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CtState {
    /// Part of a known connection.
    Established,
    /// Related to a known connection (ICMP errors, FTP data…).
    Related,
    /// Not part of any valid connection.
    Invalid,
}

impl CtState {
    fn text(self) -> &'static str {
        match self {
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
        }
    }
}

/// Source or destination address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// `ip saddr`.
    Source,
    /// `ip daddr`.
    Destination,
}

/// A layer 4 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
}

impl L4 {
    fn text(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmp => "icmp",
        }
    }
}

/// Which header the destination port is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortHeader {
    /// `tcp dport` (implies TCP).
    Tcp,
    /// `udp dport` (implies UDP).
    Udp,
    /// `th dport`: any transport header (after a `meta l4proto` match).
    Th,
}

impl PortHeader {
    fn text(self) -> &'static str {
        match self {
            PortHeader::Tcp => "tcp",
            PortHeader::Udp => "udp",
            PortHeader::Th => "th",
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `ct state …` (any of).
    CtState(Vec<CtState>),
    /// `iifname [!=] NAME`.
    Iifname(Op, IfName),
    /// `oifname [!=] NAME`.
    Oifname(Op, IfName),
    /// `iifname [!=] { … }`.
    IifnameIn(Op, Vec<IfName>),
    /// `ip saddr|daddr [!=] { nets }`.
    Addr(Dir, Op, Vec<Ipv4Net>),
    /// `meta l4proto [!=] { … }`.
    L4proto(Op, Vec<L4>),
    /// `tcp|udp|th dport [!=] { ports }`.
    Dport(PortHeader, Op, Vec<PortRange>),
    /// `ether saddr [!=] MAC` (bridge family).
    EtherSaddr(Op, MacAddr),
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it pass.
    Accept,
    /// Drop it silently.
    Drop,
    /// Source-NAT to the outgoing interface's address.
    Masquerade,
}

/// A rule: every match must hold, then the verdict applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Conditions (all must hold).
    pub matches: Vec<Match>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the rule exists.
    pub comment: Option<NftComment>,
}

impl Rule {
    fn new(matches: Vec<Match>, verdict: Verdict, comment: impl AsRef<str>) -> Rule {
        Rule {
            matches,
            verdict,
            comment: NftComment::lossy(comment.as_ref()),
        }
    }
}

/// A base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Chain name.
    pub name: NftName,
    /// Filter or source NAT.
    pub kind: ChainKind,
    /// Where it hooks in.
    pub hook: Hook,
    /// What happens to packets no rule matched.
    pub policy: Policy,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// A table of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Family.
    pub family: Family,
    /// Name ([`TABLE`]).
    pub name: NftName,
    /// Base chains.
    pub chains: Vec<Chain>,
}

/// The host's ruleset: our tables, replaced as a whole in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Header comment for the text form.
    pub title: String,
    /// Our tables.
    pub tables: Vec<Table>,
}

fn nets_text(nets: &[Ipv4Net]) -> String {
    let items: Vec<String> = nets.iter().map(|n| net_text(*n)).collect();
    if items.len() == 1 {
        items.concat()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

fn net_text(n: Ipv4Net) -> String {
    if n.prefix_len() == 32 {
        n.addr().to_string()
    } else {
        n.trunc().to_string()
    }
}

fn port_text(p: PortRange) -> String {
    if p.start() == p.end() {
        p.start().to_string()
    } else {
        format!("{}-{}", p.start(), p.end())
    }
}

fn set_text<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    if items.len() == 1 {
        f(&items[0])
    } else {
        let v: Vec<String> = items.iter().map(f).collect();
        format!("{{ {} }}", v.join(", "))
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::CtState(s) => {
                let v: Vec<&str> = s.iter().map(|s| s.text()).collect();
                write!(f, "ct state {}", v.join(","))
            }
            Match::Iifname(op, n) => write!(f, "iifname {}\"{n}\"", op.text()),
            Match::Oifname(op, n) => write!(f, "oifname {}\"{n}\"", op.text()),
            Match::IifnameIn(op, n) => write!(
                f,
                "iifname {}{}",
                op.text(),
                set_text(n, |n| format!("\"{n}\""))
            ),
            Match::Addr(dir, op, nets) => {
                let d = match dir {
                    Dir::Source => "saddr",
                    Dir::Destination => "daddr",
                };
                write!(f, "ip {d} {}{}", op.text(), nets_text(nets))
            }
            Match::L4proto(op, p) => write!(
                f,
                "meta l4proto {}{}",
                op.text(),
                set_text(p, |p| p.text().to_string())
            ),
            Match::Dport(h, op, p) => write!(
                f,
                "{} dport {}{}",
                h.text(),
                op.text(),
                set_text(p, |p| port_text(*p))
            ),
            Match::EtherSaddr(op, mac) => write!(f, "ether saddr {}{mac}", op.text()),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        f.write_str(match self.verdict {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Masquerade => "masquerade",
        })?;
        if let Some(c) = &self.comment {
            write!(f, " comment \"{c}\"")?;
        }
        Ok(())
    }
}

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn named_set(mut items: Vec<Expression<'static>>) -> Expression<'static> {
    match items.pop() {
        Some(one) if items.is_empty() => one,
        Some(last) => {
            items.push(last);
            Expression::Named(NamedExpression::Set(
                items.into_iter().map(SetItem::Element).collect(),
            ))
        }
        None => Expression::Named(NamedExpression::Set(Vec::new())),
    }
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn net_expr(n: Ipv4Net) -> Expression<'static> {
    if n.prefix_len() == 32 {
        s(n.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(s(n.network().to_string())),
            len: u32::from(n.prefix_len()),
        }))
    }
}

fn port_expr(p: PortRange) -> Expression<'static> {
    let (a, b) = (u32::from(p.start().get()), u32::from(p.end().get()));
    if a == b {
        Expression::Number(a)
    } else {
        Expression::Range(Box::new(Range {
            range: [Expression::Number(a), Expression::Number(b)],
        }))
    }
}

impl Match {
    /// The statement in the `nftables` JSON schema.
    pub fn to_statement(&self) -> Statement<'static> {
        let m = |left, op: Op, right| {
            Statement::Match(NftMatch {
                left,
                right,
                op: op.nft(),
            })
        };
        match self {
            Match::CtState(states) => Statement::Match(NftMatch {
                left: Expression::Named(NamedExpression::CT(CT {
                    key: Cow::Borrowed("state"),
                    family: None,
                    dir: None,
                })),
                right: Expression::List(states.iter().map(|s| self::s(s.text())).collect()),
                op: Operator::IN,
            }),
            Match::Iifname(op, n) => m(meta(MetaKey::Iifname), *op, s(n.to_string())),
            Match::Oifname(op, n) => m(meta(MetaKey::Oifname), *op, s(n.to_string())),
            Match::IifnameIn(op, n) => m(
                meta(MetaKey::Iifname),
                *op,
                named_set(n.iter().map(|n| s(n.to_string())).collect()),
            ),
            Match::Addr(dir, op, nets) => m(
                payload(
                    "ip",
                    match dir {
                        Dir::Source => "saddr",
                        Dir::Destination => "daddr",
                    },
                ),
                *op,
                named_set(nets.iter().map(|n| net_expr(*n)).collect()),
            ),
            Match::L4proto(op, p) => m(
                meta(MetaKey::L4proto),
                *op,
                named_set(p.iter().map(|p| s(p.text())).collect()),
            ),
            Match::Dport(h, op, p) => m(
                payload(h.text(), "dport"),
                *op,
                named_set(p.iter().map(|p| port_expr(*p)).collect()),
            ),
            Match::EtherSaddr(op, mac) => m(payload("ether", "saddr"), *op, s(mac.to_string())),
        }
    }
}

impl Ruleset {
    /// `nft -f` text: replaces our tables in one transaction.
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// The same ruleset as an `nftables` JSON document (commands: add,
    /// delete and re-add each of our tables, then its chains and rules),
    /// one transaction for `nft -j -f`.
    pub fn to_nftables(&self) -> Nftables<'static> {
        let mut b = Batch::new();
        for t in &self.tables {
            let table = || schema::Table {
                family: t.family.nft(),
                name: Cow::Owned(t.name.to_string()),
                handle: None,
            };
            // Add (a no-op when it exists) then delete: replaces without
            // failing on the first apply, and never touches other tables.
            b.add(NfListObject::Table(table()));
            b.delete(NfListObject::Table(table()));
            b.add(NfListObject::Table(table()));
            for c in &t.chains {
                b.add(NfListObject::Chain(schema::Chain {
                    family: t.family.nft(),
                    table: Cow::Owned(t.name.to_string()),
                    name: Cow::Owned(c.name.to_string()),
                    _type: Some(match c.kind {
                        ChainKind::Filter => NfChainType::Filter,
                        ChainKind::SrcNat => NfChainType::NAT,
                    }),
                    hook: Some(c.hook.nft()),
                    prio: Some(c.kind.priority(t.family)),
                    policy: Some(match c.policy {
                        Policy::Accept => NfChainPolicy::Accept,
                        Policy::Drop => NfChainPolicy::Drop,
                    }),
                    ..schema::Chain::default()
                }));
                for r in &c.rules {
                    let mut expr: Vec<Statement<'static>> =
                        r.matches.iter().map(Match::to_statement).collect();
                    expr.push(match r.verdict {
                        Verdict::Accept => Statement::Accept(None),
                        Verdict::Drop => Statement::Drop(None),
                        Verdict::Masquerade => Statement::Masquerade(None),
                    });
                    b.add(NfListObject::Rule(schema::Rule {
                        family: t.family.nft(),
                        table: Cow::Owned(t.name.to_string()),
                        chain: Cow::Owned(c.name.to_string()),
                        expr: Cow::Owned(expr),
                        comment: r.comment.as_ref().map(|c| Cow::Owned(c.to_string())),
                        ..schema::Rule::default()
                    }));
                }
            }
        }
        b.to_nftables()
    }

    /// The JSON document as text (pretty, deterministic).
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(&self.to_nftables())
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(Error::Json)
    }

    /// Every rule of chain `chain` in table family `family`.
    pub fn rules(&self, family: Family, chain: &str) -> Vec<&Rule> {
        self.tables
            .iter()
            .filter(|t| t.family == family)
            .flat_map(|t| &t.chains)
            .filter(|c| c.name.as_str() == chain)
            .flat_map(|c| &c.rules)
            .collect()
    }
}

impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.title.lines() {
            writeln!(f, "# {line}")?;
        }
        for t in &self.tables {
            let (fam, name) = (t.family.text(), &t.name);
            writeln!(f, "\ntable {fam} {name}\ndelete table {fam} {name}")?;
            writeln!(f, "table {fam} {name} {{")?;
            for (i, c) in t.chains.iter().enumerate() {
                if i > 0 {
                    writeln!(f)?;
                }
                writeln!(f, "    chain {} {{", c.name)?;
                let (ty, prio) = match c.kind {
                    ChainKind::Filter => ("filter", "filter"),
                    ChainKind::SrcNat => ("nat", "srcnat"),
                };
                let policy = match c.policy {
                    Policy::Accept => "accept",
                    Policy::Drop => "drop",
                };
                writeln!(
                    f,
                    "        type {ty} hook {} priority {prio}; policy {policy};",
                    c.hook.text()
                )?;
                for r in &c.rules {
                    writeln!(f, "        {r}")?;
                }
                writeln!(f, "    }}")?;
            }
            writeln!(f, "}}")?;
        }
        Ok(())
    }
}

/// Every address range that is not the internet side: LAN, VPN, networks.
pub fn inside(cluster: &Cluster) -> Vec<Ipv4Net> {
    let mut v: BTreeSet<Ipv4Net> = cluster.networks().iter().map(|n| n.cidr).collect();
    v.extend(cluster.vpn().map(|v| v.subnet));
    v.into_iter().collect()
}

/// Address sets with more elements than this are written as the fewest
/// prefixes covering exactly the same addresses (`ipnet`'s aggregate): a
/// role of 9,000 workers in contiguous blocks becomes a few hundred
/// prefixes instead of 9,000 elements. Short sets stay as listed.
pub const AGGREGATE_ABOVE: usize = 8;

/// The address match of an endpoint: `None` when it stands for no address
/// (the flow then cannot match anything and is left out).
fn endpoint_match(cluster: &Cluster, dir: Dir, e: &Endpoint) -> Option<Match> {
    match cluster.endpoint_nets(e) {
        None => Some(Match::Addr(dir, Op::Ne, inside(cluster))),
        Some(nets) if nets.is_empty() => None,
        Some(nets) => {
            let set: BTreeSet<Ipv4Net> = nets.into_iter().map(|n| n.trunc()).collect();
            let v: Vec<Ipv4Net> = set.into_iter().collect();
            let v = if v.len() > AGGREGATE_ABOVE {
                Ipv4Net::aggregate(&v)
            } else {
                v
            };
            Some(Match::Addr(dir, Op::Eq, v))
        }
    }
}

fn proto_matches(f: &Flow) -> Vec<Match> {
    let ports = |h: PortHeader, l4: L4| {
        if f.ports.is_empty() {
            vec![Match::L4proto(Op::Eq, vec![l4])]
        } else {
            vec![Match::Dport(h, Op::Eq, f.ports.clone())]
        }
    };
    match f.proto {
        Proto::Tcp => ports(PortHeader::Tcp, L4::Tcp),
        Proto::Udp => ports(PortHeader::Udp, L4::Udp),
        Proto::Icmp => vec![Match::L4proto(Op::Eq, vec![L4::Icmp])],
        Proto::Any => Vec::new(),
    }
}

fn flow_rule(cluster: &Cluster, f: &Flow, with_dst: bool) -> Option<Rule> {
    let mut m = vec![endpoint_match(cluster, Dir::Source, &f.from)?];
    if with_dst {
        m.push(endpoint_match(cluster, Dir::Destination, &f.to)?);
    }
    m.extend(proto_matches(f));
    Some(Rule::new(m, Verdict::Accept, f.to_string()))
}

/// The ports of the API VIP (6443): never reachable from the internet side.
fn api_ports(cluster: &Cluster) -> Vec<PortRange> {
    let set: BTreeSet<PortRange> = cluster
        .api_vip()
        .map(|v| v.ports.iter().map(|p| PortRange::one(p.port)).collect())
        .unwrap_or_default();
    set.into_iter().collect()
}

/// Sources that must not appear on the wrong interface: a NAT network's
/// addresses only on its own bridge (or, for a spanning network, from the
/// transit between the hosts), VPN addresses on no bridge.
fn anti_spoof(cluster: &Cluster) -> Vec<Rule> {
    let mut rules = Vec::new();
    let fabric = cluster.fabric();
    for net in cluster
        .networks()
        .iter()
        .filter(|n| n.kind == NetworkKind::Nat)
    {
        let transit = fabric
            .as_ref()
            .filter(|f| f.segment(net.name.as_str()).is_some())
            .map(|f| f.transit.ifname.clone());
        let (iif, comment) = match transit {
            None => (
                Match::Iifname(Op::Ne, net.bridge.clone()),
                format!("{} addresses only from {}", net.name, net.bridge),
            ),
            Some(t) => (
                Match::IifnameIn(Op::Ne, vec![net.bridge.clone(), t.clone()]),
                format!(
                    "{} addresses only from {} or the transit {t}",
                    net.name, net.bridge
                ),
            ),
        };
        rules.push(Rule::new(
            vec![
                Match::Addr(Dir::Source, Op::Eq, vec![net.cidr.trunc()]),
                iif,
            ],
            Verdict::Drop,
            comment,
        ));
    }
    if let Some(vpn) = cluster.vpn() {
        let bridges: BTreeSet<IfName> = cluster
            .networks()
            .iter()
            .map(|n| n.bridge.clone())
            .collect();
        rules.push(Rule::new(
            vec![
                Match::Addr(Dir::Source, Op::Eq, vec![vpn.subnet.trunc()]),
                Match::IifnameIn(Op::Eq, bridges.into_iter().collect()),
            ],
            Verdict::Drop,
            "vpn addresses only from the tunnel",
        ));
    }
    rules
}

fn all_flows(cluster: &Cluster, extra: &[Flow]) -> Vec<Flow> {
    let mut flows = cluster.flows();
    flows.extend(extra.iter().cloned());
    flows.sort();
    flows.dedup();
    flows
}

/// Builds the (first) host's ruleset from the model's zones,
/// `cluster.flows()` and the `extra` flows services contributed
/// (`Composed::flows`). In a multi-host cloud this is [`build_for`] the
/// first host.
pub fn build(cluster: &Cluster, extra: &[Flow]) -> Ruleset {
    build_for(cluster, extra, cluster.host())
}

/// The VXLAN underlay and anycast-gateway rules of `host` (empty in a
/// single-host cloud): the input rules (VXLAN only from the other hosts'
/// LAN addresses, then no VXLAN at all) and the bridge rules that keep each
/// segment's gateway MAC off its VXLAN port in both directions.
fn fabric_rules(cluster: &Cluster, host: &KvmHost) -> (Vec<Rule>, Vec<Rule>, Vec<Rule>) {
    let Some(f) = cluster.fabric() else {
        return Default::default();
    };
    let vxlan = vec![PortRange::one(f.port)];
    let peers: Vec<Ipv4Net> = f.peers(host).into_iter().map(Ipv4Net::from).collect();
    let mut input = Vec::new();
    if !peers.is_empty() {
        input.push(Rule::new(
            vec![
                Match::Addr(Dir::Source, Op::Eq, peers),
                Match::Dport(PortHeader::Udp, Op::Eq, vxlan.clone()),
            ],
            Verdict::Accept,
            "vxlan from the other hosts",
        ));
    }
    input.push(Rule::new(
        vec![Match::Dport(PortHeader::Udp, Op::Eq, vxlan)],
        Verdict::Drop,
        "vxlan from anyone else",
    ));
    let mut bridge_in = Vec::new();
    let mut bridge_out = Vec::new();
    for seg in &f.segments {
        let gw = Match::EtherSaddr(Op::Eq, seg.gateway_mac);
        bridge_in.push(Rule::new(
            vec![Match::Iifname(Op::Eq, seg.vxlan.clone()), gw.clone()],
            Verdict::Drop,
            format!("{}: another host's gateway stays there", seg.network.name),
        ));
        bridge_out.push(Rule::new(
            vec![Match::Oifname(Op::Eq, seg.vxlan.clone()), gw],
            Verdict::Drop,
            format!("{}: this host's gateway stays here", seg.network.name),
        ));
    }
    (input, bridge_in, bridge_out)
}

/// Builds `host`'s ruleset: [`build`] plus, in a multi-host cloud, VXLAN
/// from the other hosts only and the anycast gateway kept local on each
/// spanning network (see [`flatcar_topology::fabric`]).
pub fn build_for(cluster: &Cluster, extra: &[Flow], host: &KvmHost) -> Ruleset {
    let (fabric_input, bridge_in, bridge_out) = fabric_rules(cluster, host);
    let fabric = cluster.fabric();
    let spans = |net: &flatcar_topology::Network| {
        fabric
            .as_ref()
            .is_some_and(|f| f.segment(net.name.as_str()).is_some())
    };
    let flows = all_flows(cluster, extra);
    let inside = inside(cluster);
    let outside = |m: Vec<Match>| {
        let mut v = vec![Match::Addr(Dir::Source, Op::Ne, inside.clone())];
        v.extend(m);
        v
    };
    let api = api_ports(cluster);
    let established = || {
        [
            Rule::new(
                vec![Match::CtState(vec![CtState::Established, CtState::Related])],
                Verdict::Accept,
                "replies",
            ),
            Rule::new(
                vec![Match::CtState(vec![CtState::Invalid])],
                Verdict::Drop,
                "",
            ),
        ]
    };
    let api_never_outside = || {
        (!api.is_empty()).then(|| {
            Rule::new(
                outside(vec![Match::Dport(PortHeader::Tcp, Op::Eq, api.clone())]),
                Verdict::Drop,
                "kubernetes api never from the internet side",
            )
        })
    };

    // input: what reaches the host itself.
    let mut input: Vec<Rule> = established().into();
    input.push(Rule::new(
        vec![Match::Iifname(
            Op::Eq,
            IfName::new("lo").expect("\"lo\" is an interface name"),
        )],
        Verdict::Accept,
        "loopback",
    ));
    input.extend(anti_spoof(cluster));
    input.extend(fabric_input);
    input.extend(api_never_outside());
    input.push(Rule::new(
        vec![
            Match::Addr(Dir::Source, Op::Eq, inside.clone()),
            Match::L4proto(Op::Eq, vec![L4::Icmp]),
        ],
        Verdict::Accept,
        "ping from inside",
    ));
    if let Some(vpn) = cluster.vpn() {
        if vpn.endpoint == VpnEndpoint::Host {
            input.push(Rule::new(
                vec![Match::Dport(
                    PortHeader::Udp,
                    Op::Eq,
                    vec![PortRange::one(vpn.listen_port)],
                )],
                Verdict::Accept,
                format!("wireguard {} from anywhere", vpn.interface),
            ));
        }
    }
    // (A spanning network is a plain bridge: no libvirt dnsmasq on it.)
    for net in cluster
        .networks()
        .iter()
        .filter(|n| n.kind == NetworkKind::Nat && !spans(n))
    {
        const DNS: Port = Port::of(53);
        const DHCP: Port = Port::of(67);
        let ports = vec![PortRange::one(DNS), PortRange::one(DHCP)];
        input.push(Rule::new(
            vec![
                Match::Iifname(Op::Eq, net.bridge.clone()),
                Match::L4proto(Op::Eq, vec![L4::Tcp, L4::Udp]),
                Match::Dport(PortHeader::Th, Op::Eq, ports),
            ],
            Verdict::Accept,
            format!("libvirt dns and dhcp on {}", net.name),
        ));
    }
    input.extend(
        flows
            .iter()
            .filter(|f| f.to == Endpoint::Host)
            .filter_map(|f| flow_rule(cluster, f, false)),
    );

    // forward: what the host routes (and, with br_netfilter, switches).
    let mut forward: Vec<Rule> = established().into();
    forward.extend(anti_spoof(cluster));
    forward.extend(api_never_outside());
    for net in cluster.networks() {
        forward.push(Rule::new(
            vec![
                Match::Iifname(Op::Eq, net.bridge.clone()),
                Match::Oifname(Op::Eq, net.bridge.clone()),
            ],
            Verdict::Accept,
            format!("switched inside {} (br_netfilter)", net.name),
        ));
    }
    forward.extend(
        flows
            .iter()
            .filter(|f| f.to != Endpoint::Host && f.from != Endpoint::Host)
            .filter_map(|f| flow_rule(cluster, f, true)),
    );

    // postrouting: NAT networks leave masqueraded as the host.
    let spanning: Vec<Ipv4Net> = fabric
        .as_ref()
        .map(|f| f.segments.iter().map(|s| s.network.cidr.trunc()).collect())
        .unwrap_or_default();
    let mut postrouting: Vec<Rule> = cluster
        .networks()
        .iter()
        .filter(|n| n.kind == NetworkKind::Nat)
        .map(|n| {
            if spans(n) {
                // Several hosts: every connection leaving the spanning
                // networks leaves as this host, so its replies come back
                // here (each host's gateway only reaches the VMs it runs).
                // Between two spanning networks nothing is translated: the
                // transit routes both directions through the hosts of both
                // ends.
                Rule::new(
                    vec![
                        Match::Addr(Dir::Source, Op::Eq, vec![n.cidr.trunc()]),
                        Match::Addr(Dir::Destination, Op::Ne, spanning.clone()),
                    ],
                    Verdict::Masquerade,
                    format!("{} leaves as this host (spans hosts)", n.name),
                )
            } else {
                Rule::new(
                    vec![
                        Match::Addr(Dir::Source, Op::Eq, vec![n.cidr.trunc()]),
                        Match::Addr(Dir::Destination, Op::Ne, inside.clone()),
                    ],
                    Verdict::Masquerade,
                    format!("{} to the internet side", n.name),
                )
            }
        })
        .collect();
    // A machine on the LAN that is not in the model (a mirror, a NAS) has
    // no route back to the NAT networks: what a flow lets a NAT network
    // send to its address leaves as this host, as to the internet. Ahead
    // of the network's own rule, which leaves inside addresses alone.
    let lan = cluster.lan();
    let to_lan_addrs: BTreeSet<(&flatcar_topology::Name, std::net::Ipv4Addr)> = flows
        .iter()
        .filter_map(|f| match (&f.from, &f.to) {
            (Endpoint::Network(from), Endpoint::Addr(a)) => Some((from, *a)),
            _ => None,
        })
        .filter(|(from, a)| {
            lan.is_some_and(|l| l.cidr.contains(a))
                && cluster
                    .network(from.as_str())
                    .is_some_and(|n| n.kind == NetworkKind::Nat && !spans(n))
        })
        .collect();
    let lan_addrs = to_lan_addrs.into_iter().filter_map(|(from, a)| {
        let net = cluster.network(from.as_str())?;
        Some(Rule::new(
            vec![
                Match::Addr(Dir::Source, Op::Eq, vec![net.cidr.trunc()]),
                Match::Addr(Dir::Destination, Op::Eq, vec![Ipv4Net::from(a)]),
            ],
            Verdict::Masquerade,
            format!("{} to {a} on the lan (no route back to it)", net.name),
        ))
    });
    postrouting.splice(0..0, lan_addrs);

    // bridge: switched traffic to the VIPs from the internet side
    // (stateless: the bridge family has no conntrack here).
    let mut bridge = Vec::new();
    if !api.is_empty() {
        bridge.push(Rule::new(
            outside(vec![Match::Dport(PortHeader::Tcp, Op::Eq, api.clone())]),
            Verdict::Drop,
            "kubernetes api never from the internet side",
        ));
    }
    for vip in cluster.vips() {
        let open: BTreeSet<PortRange> = flows
            .iter()
            .filter(|f| {
                f.from == Endpoint::Internet
                    && f.to == Endpoint::Vip(vip.name.clone())
                    && f.proto == Proto::Tcp
            })
            .flat_map(|f| f.ports.iter().copied())
            .collect();
        let to_vip = Match::Addr(Dir::Destination, Op::Eq, vec![Ipv4Net::from(vip.address)]);
        if open.is_empty() {
            bridge.push(Rule::new(
                outside(vec![to_vip]),
                Verdict::Drop,
                format!("vip {} not open to the internet side", vip.name),
            ));
        } else {
            bridge.push(Rule::new(
                outside(vec![
                    to_vip.clone(),
                    Match::Dport(PortHeader::Tcp, Op::Ne, open.into_iter().collect()),
                ]),
                Verdict::Drop,
                format!(
                    "vip {}: only its open ports from the internet side",
                    vip.name
                ),
            ));
            bridge.push(Rule::new(
                outside(vec![
                    to_vip,
                    Match::L4proto(Op::Ne, vec![L4::Tcp, L4::Icmp]),
                ]),
                Verdict::Drop,
                format!("vip {}: tcp and icmp only", vip.name),
            ));
        }
    }

    let chain = |name: &str, kind, hook, policy, rules| Chain {
        name: NftName::unchecked(name),
        kind,
        hook,
        policy,
        rules,
    };
    Ruleset {
        title: format!(
            "Generated by flatcar-microcloud for host {} of cluster {}; do not edit.\n\
             Replaces only the tables named {TABLE} (one transaction); libvirt's tables stay.",
            host.name,
            cluster.name()
        ),
        tables: vec![
            Table {
                family: Family::Inet,
                name: NftName::unchecked(TABLE),
                chains: vec![
                    chain("input", ChainKind::Filter, Hook::Input, Policy::Drop, input),
                    chain(
                        "forward",
                        ChainKind::Filter,
                        Hook::Forward,
                        Policy::Drop,
                        forward,
                    ),
                    chain(
                        "postrouting",
                        ChainKind::SrcNat,
                        Hook::Postrouting,
                        Policy::Accept,
                        postrouting,
                    ),
                ],
            },
            Table {
                family: Family::Bridge,
                name: NftName::unchecked(TABLE),
                chains: {
                    let mut chains = Vec::new();
                    if !bridge_in.is_empty() {
                        chains.push(chain(
                            "input",
                            ChainKind::Filter,
                            Hook::Input,
                            Policy::Accept,
                            bridge_in.clone(),
                        ));
                    }
                    let mut bridge = bridge;
                    bridge.extend(bridge_in);
                    chains.push(chain(
                        "forward",
                        ChainKind::Filter,
                        Hook::Forward,
                        Policy::Accept,
                        bridge,
                    ));
                    if !bridge_out.is_empty() {
                        chains.push(chain(
                            "output",
                            ChainKind::Filter,
                            Hook::Output,
                            Policy::Accept,
                            bridge_out,
                        ));
                    }
                    chains
                },
            },
        ],
    }
}

/// `host`'s ruleset as `nft -f` text (`hosts/<host>/nftables.nft` in a
/// multi-host bundle).
pub fn render_for(cluster: &Cluster, extra: &[Flow], host: &KvmHost) -> String {
    build_for(cluster, extra, host).to_text()
}

/// `host`'s ruleset as `nft -j -f` JSON (`hosts/<host>/nftables.json`).
pub fn render_json_for(cluster: &Cluster, extra: &[Flow], host: &KvmHost) -> Result<String, Error> {
    build_for(cluster, extra, host).to_json()
}

/// The ruleset as `nft -f` text (what the bundle ships as `host/nftables.nft`).
pub fn render(cluster: &Cluster, extra: &[Flow]) -> String {
    build(cluster, extra).to_text()
}

/// The ruleset as `nft -j -f` JSON (`host/nftables.json`).
pub fn render_json(cluster: &Cluster, extra: &[Flow]) -> Result<String, Error> {
    build(cluster, extra).to_json()
}

/// Applies `ruleset` atomically with `nft -j -f -` (one transaction: our
/// tables are replaced; if `nft` rejects anything, nothing changes).
#[cfg(feature = "live")]
pub fn apply(ruleset: &Ruleset) -> Result<(), Error> {
    apply_with(ruleset, "nft", &[])
}

/// Dry run: `nft -c -j -f -` checks the JSON ruleset against the running
/// kernel without changing anything.
#[cfg(feature = "live")]
pub fn check(ruleset: &Ruleset) -> Result<(), Error> {
    apply_with(ruleset, "nft", &["-c"])
}

/// Like [`apply`] through another program with leading arguments, e.g.
/// `("ip", ["netns", "exec", "NS", "nft"])` to apply inside a network
/// namespace, or `("nft", ["-c"])` for a dry run. The document is the
/// `nftables` crate's [`Nftables`] (what `nftables::helper::apply_ruleset`
/// sends); it is piped here so that `nft`'s own message ends up in the
/// error instead of on stderr.
#[cfg(feature = "live")]
pub fn apply_with(ruleset: &Ruleset, program: &str, args: &[&str]) -> Result<(), Error> {
    let json = serde_json::to_string(&ruleset.to_nftables()).map_err(Error::Json)?;
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-j", "-f", "-"]);
    run_nft(program, &all, &json)
}

/// Checks `nft -f` text with `nft -c -f -` (no change to the running ruleset).
#[cfg(feature = "live")]
pub fn check_text(text: &str) -> Result<(), Error> {
    nft_text(text, &["-c", "-f", "-"])
}

/// Applies `nft -f` text atomically with `nft -f -`.
#[cfg(feature = "live")]
pub fn apply_text(text: &str) -> Result<(), Error> {
    nft_text(text, &["-f", "-"])
}

#[cfg(feature = "live")]
fn nft_text(text: &str, args: &[&str]) -> Result<(), Error> {
    run_nft("nft", args, text)
}

#[cfg(feature = "live")]
fn run_nft(program: &str, args: &[&str], input: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let cmd = |source: std::io::Error| Error::Command {
        command: program.into(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(cmd)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(cmd)?;
    }
    let out = child.wait_with_output().map_err(cmd)?;
    if out.status.success() {
        Ok(())
    } else {
        // nft repeats one message per object of an aborted transaction.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut lines: Vec<&str> = Vec::new();
        for l in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !lines.contains(&l) && lines.len() < 8 {
                lines.push(l);
            }
        }
        Err(Error::Nft(lines.join("\n")))
    }
}

/// A one-line summary per rule (`chain: rule`), handy in reports.
pub fn summary(ruleset: &Ruleset) -> String {
    let mut s = String::new();
    for t in &ruleset.tables {
        for c in &t.chains {
            for r in &c.rules {
                let _ = writeln!(s, "{} {}: {r}", t.family.text(), c.name);
            }
        }
    }
    s
}
