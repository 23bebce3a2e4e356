//! Definition and repetition levels of a column being gathered, as runs, and null rows filled
//! in lazily: a column hears of a row only when the row has a value for it, and the rows it
//! did not hear of become one null run when it next does (or when the row group ends). A
//! `syscall` row fills a dozen of the ninety columns; the others cost it nothing.

use parquet::file::metadata::LevelHistogram;

use super::rle::{Rle, bit_width};

/// Runs of equal levels, in slot order.
#[derive(Default)]
pub(super) struct Runs {
    runs: Vec<(i16, u32)>,
}

impl Runs {
    /// Appends one level.
    #[inline]
    pub(super) fn push(&mut self, level: i16) {
        self.push_run(level, 1);
    }

    /// Appends `n` copies of `level`.
    #[inline]
    pub(super) fn push_run(&mut self, level: i16, n: usize) {
        if n == 0 {
            return;
        }
        match self.runs.last_mut() {
            Some((l, c)) if *l == level => *c += n as u32,
            _ => self.runs.push((level, n as u32)),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (i16, usize)> + '_ {
        self.runs.iter().map(|&(l, n)| (l, n as usize))
    }

    /// How many slots.
    pub(super) fn len(&self) -> usize {
        self.iter().map(|(_, n)| n).sum()
    }

    /// The RLE / bit-packed hybrid encoding of the levels (no length prefix: data page v2).
    pub(super) fn encode(&self, max: i16) -> Vec<u8> {
        let mut rle = Rle::new(bit_width(max as u64));
        for (l, n) in self.iter() {
            rle.put_run(l as u32, n);
        }
        rle.finish()
    }

    /// How many slots have each level (none for a column without levels).
    pub(super) fn histogram(&self, max: i16) -> Option<LevelHistogram> {
        if max == 0 {
            return None;
        }
        let mut h = vec![0i64; max as usize + 1];
        for (l, n) in self.iter() {
            if let Some(c) = h.get_mut(l as usize) {
                *c += n as i64;
            }
        }
        Some(LevelHistogram::from(h))
    }
}

/// The levels of one column of a row group: definition levels for every column, repetition
/// levels for lists and maps (flat columns leave them empty).
#[derive(Default)]
pub(super) struct Levels {
    pub(super) def: Runs,
    pub(super) rep: Runs,
    /// Rows accounted for: every row before this one is in the runs.
    rows: usize,
}

impl Levels {
    /// Row `row` has a value (or a list, even an empty one): the rows since the last such row
    /// are null. Rows come in order.
    #[inline]
    pub(super) fn row(&mut self, row: usize, repeated: bool) {
        self.nulls_to(row, repeated);
        self.rows = row + 1;
    }

    /// The row group has `rows` rows: the ones after the last row with a value are null.
    pub(super) fn finish(&mut self, rows: usize, repeated: bool) {
        self.nulls_to(rows, repeated);
        self.rows = rows;
    }

    #[inline]
    fn nulls_to(&mut self, row: usize, repeated: bool) {
        let gap = row.saturating_sub(self.rows);
        if gap > 0 {
            self.def.push_run(0, gap);
            if repeated {
                self.rep.push_run(0, gap);
            }
        }
    }

    /// Rows accounted for.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_without_values_become_null_runs() {
        let mut l = Levels::default();
        l.row(2, true);
        l.def.push(3);
        l.rep.push(0);
        l.def.push(3);
        l.rep.push(1);
        l.row(3, true);
        l.def.push(1);
        l.rep.push(0);
        l.finish(6, true);
        let def: Vec<_> = l.def.iter().collect();
        let rep: Vec<_> = l.rep.iter().collect();
        assert_eq!(def, [(0, 2), (3, 2), (1, 1), (0, 2)]);
        assert_eq!(rep, [(0, 3), (1, 1), (0, 3)]);
        assert_eq!(l.rows(), 6);
        assert_eq!(l.def.len(), 7);

        let mut flat = Levels::default();
        flat.finish(4, false);
        assert_eq!(flat.def.iter().collect::<Vec<_>>(), [(0, 4)]);
        assert!(flat.rep.iter().next().is_none());
    }
}
