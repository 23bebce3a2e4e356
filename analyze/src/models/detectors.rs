//! The linfa-fitted detectors over scaled workload vectors. linfa fits them; what a detector
//! needs to score is kept as plain vectors (the model file must not depend on linfa's own
//! serialization), and scoring is done here.
//!
//! * [`Pca`]: reconstruction error outside the principal subspace of the normal workloads
//!   (what normal workloads never do together).
//! * [`Gmm`]: negative log-likelihood under a Gaussian mixture fitted in that subspace (how
//!   unusual the combination of ordinary behaviours is).
//! * [`KMeans`]: distance to the nearest centroid of the normal workloads.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{GaussianMixtureModel, KMeans as LinfaKMeans};
use ndarray::{Array1, Array2};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

/// Share of the variance the principal subspace keeps.
const PCA_VARIANCE: f64 = 0.9;
/// Most principal components kept.
const PCA_MAX: usize = 8;

fn matrix(x: &[Vec<f64>]) -> Option<Array2<f64>> {
    let d = x.first()?.len();
    Array2::from_shape_vec((x.len(), d), x.iter().flatten().copied().collect()).ok()
}

/// Principal subspace: mean and orthonormal components (rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Training mean.
    pub mean: Vec<f64>,
    /// Components, one row each, strongest first.
    pub components: Vec<Vec<f64>>,
}

impl Pca {
    /// Fits the subspace that keeps [`PCA_VARIANCE`] of the variance (at most [`PCA_MAX`]
    /// components). None when there are fewer than three workloads or no variance at all.
    pub fn fit(x: &[Vec<f64>]) -> Option<Pca> {
        let m = matrix(x)?;
        let (n, d) = m.dim();
        let kmax = PCA_MAX.min(n.saturating_sub(1)).min(d);
        if n < 3 || kmax == 0 || m.iter().all(|&v| v == m[[0, 0]]) {
            return None;
        }
        // LOBPCG may fail to converge when asked for as many components as the rank: retry
        // with fewer.
        let mut k = kmax;
        let fitted = loop {
            match linfa_reduction::Pca::params(k).fit(&DatasetBase::from(m.clone())) {
                Ok(p) => break p,
                Err(_) if k > 1 => k -= 1,
                Err(_) => return None,
            }
        };
        let ratio = fitted.explained_variance_ratio();
        let mut keep = 0;
        let mut acc = 0.0;
        for r in ratio.iter() {
            keep += 1;
            acc += r;
            if acc >= PCA_VARIANCE {
                break;
            }
        }
        let comps = fitted.components();
        let components: Vec<Vec<f64>> = (0..keep.min(comps.nrows()))
            .map(|i| comps.row(i).to_vec())
            .collect();
        if components.iter().flatten().any(|v| !v.is_finite()) {
            return None;
        }
        Some(Pca {
            mean: fitted.mean().to_vec(),
            components,
        })
    }

    /// Coordinates of `x` in the subspace.
    pub fn project(&self, x: &[f64]) -> Vec<f64> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(x)
                    .zip(&self.mean)
                    .map(|((c, x), m)| c * (x - m))
                    .sum()
            })
            .collect()
    }

    /// Squared distance of `x` from the subspace.
    pub fn residual(&self, x: &[f64]) -> f64 {
        let p = self.project(x);
        let mut r: Vec<f64> = x.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        for (c, coef) in self.components.iter().zip(&p) {
            for (ri, ci) in r.iter_mut().zip(c) {
                *ri -= coef * ci;
            }
        }
        r.iter().map(|v| v * v).sum()
    }
}

/// One Gaussian component: weight, mean, lower Cholesky factor of the covariance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Mixture weight.
    pub weight: f64,
    /// Mean.
    pub mean: Vec<f64>,
    /// Cholesky factor L (row-major, lower), covariance = L·Lᵀ.
    pub chol: Vec<Vec<f64>>,
}

/// A Gaussian mixture in the principal subspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gmm {
    /// Components.
    pub components: Vec<Component>,
}

fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

impl Component {
    fn log_pdf(&self, x: &[f64]) -> f64 {
        let n = self.mean.len();
        // Solve L·y = x − μ; then the Mahalanobis distance is |y|².
        let mut y = vec![0.0; n];
        for i in 0..n {
            let s: f64 = (0..i).map(|k| self.chol[i][k] * y[k]).sum();
            y[i] = (x.get(i).copied().unwrap_or(0.0) - self.mean[i] - s) / self.chol[i][i];
        }
        let maha: f64 = y.iter().map(|v| v * v).sum();
        let log_det: f64 = 2.0 * (0..n).map(|i| self.chol[i][i].ln()).sum::<f64>();
        -0.5 * (maha + log_det + n as f64 * (2.0 * std::f64::consts::PI).ln())
    }
}

impl Gmm {
    /// Fits a mixture of `clusters` Gaussians (full covariance, regularised) to `x`.
    pub fn fit(x: &[Vec<f64>], clusters: usize, seed: u64) -> Option<Gmm> {
        let m = matrix(x)?;
        if m.nrows() < 2 * clusters.max(1) || m.ncols() == 0 {
            return None;
        }
        let params = GaussianMixtureModel::params_with_rng(
            clusters.max(1),
            Xoshiro256Plus::seed_from_u64(seed),
        )
        .reg_covariance(1e-2)
        .tolerance(1e-4)
        .max_n_iterations(200);
        let fitted: GaussianMixtureModel<f64> = params.fit(&DatasetBase::from(m)).ok()?;
        let weights: &Array1<f64> = fitted.weights();
        let mut components = Vec::new();
        for (c, w) in weights.iter().enumerate() {
            let mean = fitted.means().row(c).to_vec();
            let cov = fitted
                .covariances()
                .index_axis(ndarray::Axis(0), c)
                .outer_iter()
                .map(|r| r.to_vec())
                .collect::<Vec<_>>();
            components.push(Component {
                weight: *w,
                mean,
                chol: cholesky(&cov)?,
            });
        }
        Some(Gmm { components })
    }

    /// Negative log-likelihood of `x`.
    pub fn nll(&self, x: &[f64]) -> f64 {
        let logs: Vec<f64> = self
            .components
            .iter()
            .map(|c| c.weight.max(1e-300).ln() + c.log_pdf(x))
            .collect();
        let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return 1e300;
        }
        -(max + logs.iter().map(|l| (l - max).exp()).sum::<f64>().ln())
    }
}

/// k-means centroids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    /// Centroids.
    pub centroids: Vec<Vec<f64>>,
}

impl KMeans {
    /// Fits `k` centroids to `x` (k-means++ initialisation, seeded).
    pub fn fit(x: &[Vec<f64>], k: usize, seed: u64) -> Option<KMeans> {
        let m = matrix(x)?;
        let k = k.clamp(1, m.nrows());
        let fitted = LinfaKMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
            .max_n_iterations(200)
            .tolerance(1e-6)
            .fit(&DatasetBase::from(m))
            .ok()?;
        let centroids: Vec<Vec<f64>> = fitted
            .centroids()
            .outer_iter()
            .map(|r| r.to_vec())
            .collect();
        centroids
            .iter()
            .flatten()
            .all(|v| v.is_finite())
            .then_some(KMeans { centroids })
    }

    /// Euclidean distance to the nearest centroid.
    pub fn distance(&self, x: &[f64]) -> f64 {
        self.centroids
            .iter()
            .map(|c| c.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
            .fold(f64::INFINITY, f64::min)
            .sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::rng::SplitMix64;

    /// Normal points near a 2-d plane in 6-d space, plus two planted outliers.
    fn data() -> Vec<Vec<f64>> {
        let mut r = SplitMix64::new(5);
        let mut x: Vec<Vec<f64>> = (0..120)
            .map(|_| {
                let (a, b) = (r.next_f64() * 4.0 - 2.0, r.next_f64() * 4.0 - 2.0);
                vec![a, b, a + b, a - b, 0.5 * a, 0.01 * r.next_f64()]
            })
            .collect();
        x.push(vec![0.0, 0.0, 3.0, -3.0, 0.0, 0.0]); // off the plane
        x.push(vec![9.0, 9.0, 18.0, 0.0, 4.5, 0.0]); // on the plane, far away
        x
    }

    fn top2(scores: &[f64]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        let mut t = idx[..2].to_vec();
        t.sort();
        t
    }

    #[test]
    fn pca_residual_finds_the_off_plane_point() {
        let x = data();
        let pca = Pca::fit(&x[..120]).expect("pca");
        assert!(
            pca.components.len() >= 2 && pca.components.len() <= 3,
            "{}",
            pca.components.len()
        );
        let r: Vec<f64> = x.iter().map(|p| pca.residual(p)).collect();
        let best = (0..r.len()).max_by(|a, b| r[*a].total_cmp(&r[*b])).unwrap();
        assert_eq!(best, 120);
    }

    #[test]
    fn gmm_and_kmeans_find_planted_outliers() {
        let x = data();
        let pca = Pca::fit(&x[..120]).unwrap();
        let proj: Vec<Vec<f64>> = x.iter().map(|p| pca.project(p)).collect();
        let gmm = Gmm::fit(&proj[..120], 2, 1).expect("gmm");
        let nll: Vec<f64> = proj.iter().map(|p| gmm.nll(p)).collect();
        assert!(nll[121] > nll[..120].iter().copied().fold(f64::MIN, f64::max));
        let km = KMeans::fit(&x[..120], 3, 1).expect("kmeans");
        let d: Vec<f64> = x.iter().map(|p| km.distance(p)).collect();
        assert_eq!(top2(&d)[1], 121);
        assert!(d[121] > d[..120].iter().copied().fold(f64::MIN, f64::max));
        // Seeded: the same fit twice.
        assert_eq!(KMeans::fit(&x[..120], 3, 1), Some(km));
        assert_eq!(Gmm::fit(&proj[..120], 2, 1), Some(gmm));
    }

    #[test]
    fn degenerate_inputs_give_none_not_panics() {
        assert!(Pca::fit(&[]).is_none());
        assert!(Pca::fit(&[vec![1.0, 1.0], vec![1.0, 1.0], vec![1.0, 1.0]]).is_none());
        assert!(Gmm::fit(&[vec![1.0]], 2, 0).is_none());
        assert!(KMeans::fit(&[], 2, 0).is_none());
    }
}
