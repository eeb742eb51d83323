/* Periodic padding and neighbour lists for KIM portable models, shared by every model of a set.
 *
 * kl_pad writes a configuration's atoms (wrapped into the cell) followed by their periodic images
 * within a distance of the cell, sorted by that distance, so that the particles a model with a
 * shorter influence distance needs are a prefix of the same arrays.
 * kl_build fills several neighbour lists (one per model cutoff) in one cell-list pass; each list
 * has its own particle prefix and its own rows (the contributing atoms, or every particle of its
 * prefix for models that ask for the neighbours of ghosts).
 * kl_get_neigh is the KIM API GetNeighborList callback; its data object is a View: the lists of
 * one model, in the order of that model's cutoffs.
 * Loaded with ctypes (kimlabel/neighbours.py); the Python module it defines is empty.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COLLISION 1.0e-10 /* A^2: closer pairs are an error, as in kimpy's neighbour list */

typedef struct {
  int n_particles; /* particles a model sees: neighbours are taken from [0, n_particles) */
  int n_rows;      /* particles with a neighbour row: [0, n_rows); the others have none */
  double cutoff;   /* A */
  int *num, *begin, *neigh;
  int cap_num, cap_begin, cap_neigh;
} List;

typedef struct {
  int n_lists;
  List **lists;
} View;

List *kl_list_new(double cutoff) {
  List *l = calloc(1, sizeof(List));
  if (l) l->cutoff = cutoff;
  return l;
}

void kl_list_free(List *l) {
  if (!l) return;
  free(l->num);
  free(l->begin);
  free(l->neigh);
  free(l);
}

View *kl_view_new(int n_lists, List **lists) {
  View *v = calloc(1, sizeof(View));
  if (!v) return NULL;
  v->lists = malloc(sizeof(List *) * (n_lists > 0 ? n_lists : 1));
  if (!v->lists) { free(v); return NULL; }
  v->n_lists = n_lists;
  memcpy(v->lists, lists, sizeof(List *) * n_lists);
  return v;
}

void kl_view_free(View *v) {
  if (!v) return;
  free(v->lists);
  free(v);
}

int kl_get_neigh(void *data, int n_cutoffs, const double *cutoffs, int index, int particle,
                 int *n_neigh, const int **neigh) {
  const View *v = data;
  (void) n_cutoffs;
  if (index < 0 || index >= v->n_lists) return 1;
  const List *l = v->lists[index];
  if (cutoffs[index] > l->cutoff + 1e-12) return 1;
  if (particle < 0 || particle >= l->n_particles) return 1;
  if (particle >= l->n_rows) {
    *n_neigh = 0;
    *neigh = l->neigh;
    return 0;
  }
  *n_neigh = l->num[particle];
  *neigh = l->neigh + l->begin[particle];
  return 0;
}

static int grow(int **a, int *cap, int need) {
  if (need <= *cap) return 0;
  int c = *cap > 0 ? *cap : 64;
  while (c < need) c *= 2;
  int *b = realloc(*a, sizeof(int) * (size_t) c);
  if (!b) return 1;
  *a = b;
  *cap = c;
  return 0;
}

/* The particles of kl_build sorted into bins half a cutoff wide. Dense grids index an array of
 * bin starts; grids with far more bins than particles (a cluster in a large vacuum-padded cell,
 * atoms far apart) keep only their occupied bins, in a hash table, so memory and time follow the
 * particles, not the volume. Both order particles by (bin, index): the neighbour lists, and so
 * the energies, are the same either way. */
typedef struct {
  int size[3];
  double lo[3], width;
  int *order;      /* particles by bin */
  int *start;      /* dense: nb + 1 bin starts */
  long long *keys; /* sparse: hash table of occupied bins (-1: empty), with their ranges */
  int *first, *last;
  size_t mask;
} Grid;

#define MAX_BINS_PER_AXIS 1048576 /* 2^20: bin keys fit 60 bits; further atoms share the edge bins */

static int bin_index(const Grid *g, double x, int a) {
  double b = floor((x - g->lo[a]) / g->width);
  if (!(b >= 0)) return 0; /* also NaN */
  return b >= g->size[a] ? g->size[a] - 1 : (int) b;
}

static long long bin_key(const Grid *g, int bx, int by, int bz) {
  return (long long) bx + (long long) g->size[0] * ((long long) by + (long long) g->size[1] * bz);
}

static size_t slot_of(long long key, size_t mask) {
  unsigned long long z = (unsigned long long) key + 0x9E3779B97F4A7C15ULL; /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (size_t) (z ^ (z >> 31)) & mask;
}

/* The range [*s, *e) of g->order in bin key (empty if the bin has no particle). */
static void bin_range(const Grid *g, long long key, int *s, int *e) {
  if (g->start) {
    *s = g->start[key];
    *e = g->start[key + 1];
    return;
  }
  for (size_t h = slot_of(key, g->mask);; h = (h + 1) & g->mask) {
    if (g->keys[h] == key) { *s = g->first[h]; *e = g->last[h]; return; }
    if (g->keys[h] < 0) { *s = *e = 0; return; }
  }
}

typedef struct {
  long long key;
  int p;
} Binned;

static int by_key(const void *a, const void *b) {
  const Binned *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->p - y->p;
}

static void grid_free(Grid *g) {
  free(g->order);
  free(g->start);
  free(g->keys);
  free(g->first);
  free(g->last);
}

/* Bin the first `parts` particles; 0, or 3 out of memory. */
static int grid_build(Grid *g, int parts, const double *coords, double cutoff) {
  memset(g, 0, sizeof *g);
  g->width = cutoff / 2;
  double hi[3] = {1, 1, 1};
  for (int a = 0; a < 3; a++) g->lo[a] = 0;
  for (int a = 0; a < 3 && parts > 0; a++) g->lo[a] = hi[a] = coords[a];
  for (int p = 0; p < parts; p++)
    for (int a = 0; a < 3; a++) {
      double x = coords[3 * p + a];
      if (x < g->lo[a]) g->lo[a] = x;
      if (x > hi[a]) hi[a] = x;
    }
  double nb = 1.0;
  for (int a = 0; a < 3; a++) {
    double s = floor((hi[a] - g->lo[a]) / g->width);
    g->size[a] = !(s >= 1) ? 1 : (s > MAX_BINS_PER_AXIS ? MAX_BINS_PER_AXIS : (int) s);
    nb *= g->size[a];
  }
  int n = parts > 0 ? parts : 1;
  g->order = malloc(sizeof(int) * (size_t) n);
  if (!g->order) return 3;
  if (nb <= 4.0 * parts + 64) { /* dense: a bin array no larger than a few per particle */
    int nbins = (int) nb;
    int *bin_of = malloc(sizeof(int) * (size_t) n);
    g->start = calloc((size_t) nbins + 1, sizeof(int));
    int *fill = malloc(sizeof(int) * (size_t) nbins);
    if (!bin_of || !g->start || !fill) { free(bin_of); free(fill); return 3; }
    for (int p = 0; p < parts; p++) {
      const double *x = coords + 3 * p;
      bin_of[p] = (int) bin_key(g, bin_index(g, x[0], 0), bin_index(g, x[1], 1), bin_index(g, x[2], 2));
      g->start[bin_of[p] + 1]++;
    }
    for (int b = 0; b < nbins; b++) g->start[b + 1] += g->start[b];
    memcpy(fill, g->start, sizeof(int) * (size_t) nbins);
    for (int p = 0; p < parts; p++) g->order[fill[bin_of[p]]++] = p;
    free(fill);
    free(bin_of);
    return 0;
  }
  Binned *sorted = malloc(sizeof(Binned) * (size_t) n);
  size_t slots = 16;
  while (slots < 2 * (size_t) n) slots *= 2;
  g->mask = slots - 1;
  g->keys = malloc(sizeof(long long) * slots);
  g->first = malloc(sizeof(int) * slots);
  g->last = malloc(sizeof(int) * slots);
  if (!sorted || !g->keys || !g->first || !g->last) { free(sorted); return 3; }
  for (size_t h = 0; h < slots; h++) g->keys[h] = -1;
  for (int p = 0; p < parts; p++) {
    const double *x = coords + 3 * p;
    sorted[p].key = bin_key(g, bin_index(g, x[0], 0), bin_index(g, x[1], 1), bin_index(g, x[2], 2));
    sorted[p].p = p;
  }
  qsort(sorted, (size_t) parts, sizeof(Binned), by_key);
  for (int m = 0; m < parts; m++) {
    g->order[m] = sorted[m].p;
    if (m > 0 && sorted[m].key == sorted[m - 1].key) continue;
    size_t h = slot_of(sorted[m].key, g->mask);
    while (g->keys[h] >= 0) h = (h + 1) & g->mask;
    g->keys[h] = sorted[m].key;
    g->first[h] = m;
    int e = m + 1;
    while (e < parts && sorted[e].key == sorted[m].key) e++;
    g->last[h] = e;
  }
  free(sorted);
  return 0;
}

/* Fill lists[0..n_lists) from coords (n_total x 3, A), with P[k] particles and R[k] rows for list k.
 * Returns 0, 1 on colliding atoms, 3 out of memory, 4 on non-finite coordinates. Time and memory
 * follow the particles and their neighbours, whatever the space between them. */
int kl_build(int n_total, const double *coords, int n_lists, List **lists, const int *P, const int *R) {
  int parts = 0, rows = 0;
  double cmax = 0.0;
  for (int k = 0; k < n_lists; k++) {
    if (P[k] > parts) parts = P[k];
    if (R[k] > rows) rows = R[k];
    if (lists[k]->cutoff > cmax) cmax = lists[k]->cutoff;
  }
  if (parts > n_total) parts = n_total;
  if (rows > parts) rows = parts;
  if (!(cmax > 0.0)) cmax = 1.0;
  for (int i = 0; i < 3 * parts; i++)
    if (!isfinite(coords[i])) return 4;
  Grid g;
  int *cut_order = malloc(sizeof(int) * (size_t) (n_lists > 0 ? n_lists : 1));
  double *cutsq = malloc(sizeof(double) * (size_t) (n_lists > 0 ? n_lists : 1));
  int *total = calloc((size_t) (n_lists > 0 ? n_lists : 1), sizeof(int));
  int err = grid_build(&g, parts, coords, cmax);
  if (!cut_order || !cutsq || !total) err = 3;
  /* lists by decreasing cutoff: a pair beyond one cutoff is beyond every later one */
  for (int k = 0; k < n_lists && !err; k++) {
    int j = k;
    while (j > 0 && lists[cut_order[j - 1]]->cutoff < lists[k]->cutoff) { cut_order[j] = cut_order[j - 1]; j--; }
    cut_order[j] = k;
  }
  for (int k = 0; k < n_lists && !err; k++) {
    List *l = lists[k];
    cutsq[k] = l->cutoff * l->cutoff;
    l->n_particles = P[k] < n_total ? P[k] : n_total;
    l->n_rows = R[k] < l->n_particles ? R[k] : l->n_particles;
    if (grow(&l->num, &l->cap_num, l->n_rows + 1) || grow(&l->begin, &l->cap_begin, l->n_rows + 1)
        || grow(&l->neigh, &l->cap_neigh, 64))
      err = 3;
  }
  for (int i = 0; i < rows && !err; i++) {
    for (int k = 0; k < n_lists; k++)
      if (i < lists[k]->n_rows) lists[k]->begin[i] = total[k];
    const double *xi = coords + 3 * i;
    int idx[3];
    for (int a = 0; a < 3; a++) idx[a] = bin_index(&g, xi[a], a);
    for (int bz = idx[2] > 1 ? idx[2] - 2 : 0; bz <= idx[2] + 2 && bz < g.size[2] && !err; bz++)
      for (int by = idx[1] > 1 ? idx[1] - 2 : 0; by <= idx[1] + 2 && by < g.size[1] && !err; by++)
        for (int bx = idx[0] > 1 ? idx[0] - 2 : 0; bx <= idx[0] + 2 && bx < g.size[0] && !err; bx++) {
          int s, e;
          bin_range(&g, bin_key(&g, bx, by, bz), &s, &e);
          for (int m = s; m < e; m++) {
            int j = g.order[m];
            if (j == i) continue;
            double dx = coords[3 * j] - xi[0], dy = coords[3 * j + 1] - xi[1], dz = coords[3 * j + 2] - xi[2];
            double rsq = dx * dx + dy * dy + dz * dz;
            if (rsq < COLLISION) { err = 1; break; }
            for (int c = 0; c < n_lists; c++) {
              int k = cut_order[c];
              if (rsq >= cutsq[k]) break;
              List *l = lists[k];
              if (i >= l->n_rows || j >= l->n_particles) continue;
              if (total[k] >= l->cap_neigh && grow(&l->neigh, &l->cap_neigh, total[k] + 1)) { err = 3; break; }
              l->neigh[total[k]++] = j;
            }
            if (err) break;
          }
        }
    for (int k = 0; k < n_lists; k++)
      if (i < lists[k]->n_rows) lists[k]->num[i] = total[k] - lists[k]->begin[i];
  }
  grid_free(&g);
  free(total);
  free(cut_order);
  free(cutsq);
  return err;
}

typedef struct {
  double overhang;
  int image, shift[3];
} Ghost;

static int by_overhang(const void *a, const void *b) {
  const Ghost *x = a, *y = b;
  if (x->overhang != y->overhang) return x->overhang < y->overhang ? -1 : 1;
  for (int s = 0; s < 3; s++)
    if (x->shift[s] != y->shift[s]) return x->shift[s] < y->shift[s] ? -1 : 1;
  return x->image - y->image;
}

/* Atoms wrapped into the cell (periodic axes), then every periodic image within `influence` A of
 * the cell along the periodic axes, nearest first. Writes up to `cap` particles to coords (x3), image and overhang (A beyond
 * the cell; 0 for the atoms). Returns the particle count (more than cap: call again with room),
 * -1 for a singular cell on a periodic axis, -2 out of memory, -3 when the cell is so thin for the
 * reach that it would take more than MAX_SHIFTS cell shifts, MAX_IMAGE_WORK shifted atoms or
 * MAX_IMAGES images, -4 non-finite input. */
#define MAX_SHIFTS 1.0e6
#define MAX_IMAGE_WORK 1.0e9
#define MAX_IMAGES 10000000
int kl_pad(int n, const double *positions, const double *cell, const int *pbc, double influence,
           int cap, double *coords, int *image, double *overhang) {
  int periodic = pbc[0] || pbc[1] || pbc[2];
  if (!isfinite(influence)) return -4;
  for (int i = 0; i < 3 * n; i++)
    if (!isfinite(positions[i])) return -4;
  for (int i = 0; i < 9; i++)
    if (!isfinite(cell[i])) return -4;
  if (!periodic) {
    if (n <= cap) {
      memcpy(coords, positions, sizeof(double) * 3 * (size_t) n);
      for (int i = 0; i < n; i++) { image[i] = i; overhang[i] = 0.0; }
    }
    return n;
  }
  const double *a = cell, *b = cell + 3, *c = cell + 6;
  double bc[3] = {b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0]};
  double ca[3] = {c[1] * a[2] - c[2] * a[1], c[2] * a[0] - c[0] * a[2], c[0] * a[1] - c[1] * a[0]};
  double ab[3] = {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
  double det = a[0] * bc[0] + a[1] * bc[1] + a[2] * bc[2];
  if (!isfinite(det) || fabs(det) < 1e-12) return -1;
  /* fractional coordinate s_k = r . (reciprocal row k); the face distance of axis k is |det| / |row k| */
  double *rec[3] = {bc, ca, ab}, dist[3];
  int reps[3];
  double shifts = 1.0;
  for (int k = 0; k < 3; k++) {
    dist[k] = fabs(det) / sqrt(rec[k][0] * rec[k][0] + rec[k][1] * rec[k][1] + rec[k][2] * rec[k][2]);
    double r = pbc[k] ? ceil(influence / dist[k]) : 0.0;
    if (!(dist[k] > 0) || !(r < MAX_SHIFTS)) return -3;
    reps[k] = (int) r;
    shifts *= 2.0 * r + 1.0;
  }
  if (shifts > MAX_SHIFTS || shifts * n > MAX_IMAGE_WORK) return -3;
  double *frac = malloc(sizeof(double) * 3 * (size_t) (n > 0 ? n : 1));
  if (!frac) return -2;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 3; k++) {
      const double *r = positions + 3 * i;
      double s = (r[0] * rec[k][0] + r[1] * rec[k][1] + r[2] * rec[k][2]) / det;
      if (pbc[k]) {
        s -= floor(s);
        if (s >= 1.0) s = 0.0;
      }
      frac[3 * i + k] = s;
    }
  size_t cap_g = 64, n_g = 0;
  Ghost *g = malloc(sizeof(Ghost) * cap_g);
  if (!g) { free(frac); return -2; }
  for (int s0 = -reps[0]; s0 <= reps[0]; s0++)
    for (int s1 = -reps[1]; s1 <= reps[1]; s1++)
      for (int s2 = -reps[2]; s2 <= reps[2]; s2++) {
        if (!s0 && !s1 && !s2) continue;
        int sh[3] = {s0, s1, s2};
        for (int i = 0; i < n; i++) {
          double ov = 0.0;
          for (int k = 0; k < 3; k++) {
            if (!pbc[k]) continue; /* atoms may lie anywhere along a non-periodic axis */
            double s = frac[3 * i + k] + sh[k];
            double out = (s > 1.0 ? s - 1.0 : 0.0) + (s < 0.0 ? -s : 0.0);
            if (out * dist[k] > ov) ov = out * dist[k];
          }
          if (ov > influence) continue;
          if (n_g == MAX_IMAGES) { free(g); free(frac); return -3; }
          if (n_g == cap_g) {
            Ghost *h = realloc(g, sizeof(Ghost) * cap_g * 2);
            if (!h) { free(g); free(frac); return -2; }
            g = h;
            cap_g *= 2;
          }
          g[n_g].overhang = ov;
          g[n_g].image = i;
          memcpy(g[n_g].shift, sh, sizeof sh);
          n_g++;
        }
      }
  qsort(g, n_g, sizeof(Ghost), by_overhang);
  int total = n + (int) n_g;
  if (total <= cap) {
    for (int p = 0; p < total; p++) {
      int i = p < n ? p : g[p - n].image;
      const int *sh = p < n ? (const int[3]){0, 0, 0} : g[p - n].shift;
      double s[3] = {frac[3 * i] + sh[0], frac[3 * i + 1] + sh[1], frac[3 * i + 2] + sh[2]};
      for (int x = 0; x < 3; x++) coords[3 * p + x] = s[0] * a[x] + s[1] * b[x] + s[2] * c[x];
      image[p] = i;
      overhang[p] = p < n ? 0.0 : g[p - n].overhang;
    }
  }
  free(g);
  free(frac);
  return total;
}

/* out[image[p]] += f[p] for p < n_particles: forces on images folded onto their atoms (eV/A). */
void kl_fold(int n_particles, const int *image, const double *f, double *out) {
  for (int p = 0; p < n_particles; p++)
    for (int x = 0; x < 3; x++) out[3 * image[p] + x] += f[3 * p + x];
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_neighbours",
                                    "C helpers loaded with ctypes by kimlabel.neighbours", -1, NULL};

PyMODINIT_FUNC PyInit__neighbours(void) { return PyModule_Create(&module); }
