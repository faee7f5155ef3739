//! The figures: collecting, printing (a table, then JSON lines), and the
//! timing helpers.

use super::*;

pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    pub(crate) goal: String,
    pub(crate) note: String,
}

#[derive(Default)]
pub(crate) struct Figures(pub(crate) Vec<Figure>);

impl Figures {
    pub(crate) fn add(
        &mut self,
        name: &str,
        value: f64,
        unit: &'static str,
        goal: &str,
        note: &str,
    ) {
        eprintln!("  {name} = {} {unit} {note}", fmt_num(value));
        self.0.push(Figure {
            name: name.to_string(),
            value,
            unit,
            goal: goal.to_string(),
            note: note.to_string(),
        });
    }

    pub(crate) fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
            .unwrap_or(f64::NAN)
    }

    pub(crate) fn print(&self, header: &[String]) {
        let mut out = std::io::stdout().lock();
        for line in header {
            let _ = writeln!(out, "{line}");
        }
        let w = self
            .0
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:<w$}  {:>12}  {:<8}  {:<8}  note",
            "figure", "value", "unit", "goal"
        );
        let _ = writeln!(out, "{}", "-".repeat(w + 40));
        for f in &self.0 {
            let _ = writeln!(
                out,
                "{:<w$}  {:>12}  {:<8}  {:<8}  {}",
                f.name,
                fmt_num(f.value),
                f.unit,
                f.goal,
                f.note
            );
        }
        let _ = writeln!(out);
        for f in &self.0 {
            let value = if f.value.is_finite() {
                fmt_num(f.value)
            } else {
                "null".to_string()
            };
            let _ = writeln!(
                out,
                "{{\"name\":\"{}\",\"value\":{value},\"unit\":\"{}\"}}",
                f.name, f.unit
            );
        }
    }
}

pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "NaN".into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Nearest-rank percentile (`p` in 0..=1) of unsorted samples.
pub(crate) fn pct(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn progress(what: &str, t0: Instant) {
    eprintln!("[{:>7.2}s] {what}", t0.elapsed().as_secs_f64());
}

/// Times `a` and `b` alternately, call by call (the order flips every pair,
/// and a tenth more pairs run first as a warm-up), so that both see the same
/// scheduler and machine noise. Samples in microseconds.
pub(crate) async fn alternate<A, B, FA, FB, TA, TB, EA, EB>(
    pairs: usize,
    mut a: A,
    mut b: B,
) -> Result<(Vec<f64>, Vec<f64>), AnyErr>
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = Result<TA, EA>>,
    FB: Future<Output = Result<TB, EB>>,
    EA: Into<AnyErr>,
    EB: Into<AnyErr>,
{
    let warm = (pairs / 10).max(50);
    let (mut sa, mut sb) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..warm + pairs {
        for a_turn in [i % 2 == 0, i % 2 == 1] {
            let started = Instant::now();
            if a_turn {
                a().await.map_err(Into::into)?;
            } else {
                b().await.map_err(Into::into)?;
            }
            let took = us(started.elapsed());
            if i >= warm {
                if a_turn {
                    sa.push(took);
                } else {
                    sb.push(took);
                }
            }
        }
    }
    Ok((sa, sb))
}
