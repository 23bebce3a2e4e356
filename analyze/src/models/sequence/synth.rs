//! Synthetic syscall traces for testing sequence models in the classic per-trace setting.
//!
//! Normal programs are a random grammar: a set of *procedures* (fixed syscall strings, some
//! with an inner loop that repeats a block 1–4 times, like a read/write loop), and per program
//! a Markov chain over procedures (each procedure has two or three possible successors). A
//! trace is a walk of the chain from the program's entry procedure. Benign noise replaces a
//! small share of calls by random calls of the alphabet, and a program sometimes takes a
//! transition outside its grammar (a rare benign branch). An attack trace is a normal trace with
//! one or two *foreign* subsequences inserted: strings drawn from a different random grammar
//! over the same alphabet (an exploit's payload uses ordinary syscalls, in an order the
//! program never uses). The same seed gives the same traces.

use crate::models::rng::SplitMix64;

/// The alphabet: common x86_64 syscall numbers (read, write, open, close, stat, mmap, …).
const ALPHABET: &[u32] = &[
    0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 16, 17, 20, 21, 22, 23, 32, 33, 39, 41, 42, 43, 44,
    45, 49, 56, 57, 59, 60, 61, 62, 72, 78, 79, 89, 96, 97, 102, 104, 107, 108, 202, 218, 228, 231,
    257, 262, 273, 302, 318,
];

/// Generator settings.
#[derive(Clone, Copy, Debug)]
pub struct SynthConfig {
    /// Normal traces.
    pub normal: usize,
    /// Attack traces.
    pub attack: usize,
    /// Distinct programs traces come from.
    pub programs: usize,
    /// Share of calls replaced by a random call (benign noise).
    pub noise: f64,
    /// Chance that a program takes a transition outside its grammar (a rare benign branch).
    pub rare: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            normal: 800,
            attack: 200,
            programs: 4,
            noise: 0.01,
            rare: 0.03,
            seed: 1,
        }
    }
}

/// Normal and attack traces.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthTraces {
    /// Normal traces.
    pub normal: Vec<Vec<u32>>,
    /// Attack traces.
    pub attack: Vec<Vec<u32>>,
}

/// Skewed choice: low indices are more common (as for real syscalls).
fn pick(rng: &mut SplitMix64) -> u32 {
    let i = ((rng.next_f64() * rng.next_f64()) * ALPHABET.len() as f64) as usize;
    ALPHABET[i.min(ALPHABET.len() - 1)]
}

struct Procedure {
    head: Vec<u32>,
    body: Vec<u32>,
    tail: Vec<u32>,
}

fn procedure(rng: &mut SplitMix64) -> Procedure {
    fn s(rng: &mut SplitMix64, n: usize) -> Vec<u32> {
        (0..n).map(|_| pick(rng)).collect()
    }
    let head = s(rng, 2);
    let body = if rng.below(2) == 0 {
        Vec::new()
    } else {
        let n = 1 + rng.below(3);
        s(rng, n)
    };
    let n = 1 + rng.below(4);
    let tail = s(rng, n);
    let mut p = Procedure { head, body, tail };
    let extra = rng.below(4);
    p.head.extend((0..extra).map(|_| pick(rng)));
    p
}

struct Program {
    entry: usize,
    next: Vec<Vec<usize>>,
}

fn emit(p: &Procedure, rng: &mut SplitMix64, out: &mut Vec<u32>) {
    out.extend(&p.head);
    for _ in 0..(1 + rng.below(4)) {
        out.extend(&p.body);
    }
    out.extend(&p.tail);
}

/// Generates traces.
pub fn generate(cfg: &SynthConfig) -> SynthTraces {
    let mut rng = SplitMix64::new(cfg.seed);
    let procs: Vec<Procedure> = (0..30).map(|_| procedure(&mut rng)).collect();
    let programs: Vec<Program> = (0..cfg.programs.max(1))
        .map(|_| Program {
            entry: rng.below(procs.len()),
            next: (0..procs.len())
                .map(|_| {
                    (0..2 + rng.below(2))
                        .map(|_| rng.below(procs.len()))
                        .collect()
                })
                .collect(),
        })
        .collect();
    let foreign: Vec<Vec<u32>> = (0..20)
        .map(|_| (0..4 + rng.below(7)).map(|_| pick(&mut rng)).collect())
        .collect();
    let trace = |rng: &mut SplitMix64| {
        let prog = &programs[rng.below(programs.len())];
        let mut out = Vec::new();
        let mut at = prog.entry;
        for _ in 0..(40 + rng.below(160)) {
            emit(&procs[at], rng, &mut out);
            let succ = &prog.next[at];
            at = if rng.next_f64() < cfg.rare {
                rng.below(procs.len())
            } else {
                succ[rng.below(succ.len())]
            };
        }
        for c in out.iter_mut() {
            if rng.next_f64() < cfg.noise {
                *c = pick(rng);
            }
        }
        out
    };
    let normal: Vec<Vec<u32>> = (0..cfg.normal).map(|_| trace(&mut rng)).collect();
    let attack = (0..cfg.attack)
        .map(|_| {
            let mut t = trace(&mut rng);
            for _ in 0..(1 + rng.below(2)) {
                let at = rng.below(t.len() + 1);
                let payload = &foreign[rng.below(foreign.len())];
                t.splice(at..at, payload.iter().copied());
            }
            t
        })
        .collect();
    SynthTraces { normal, attack }
}
