/* demo_train.c - the seed article's claim that "the table is learned", shown end to end with tokemb:
 * a synthetic corpus whose label is decided by a few sentiment words among neutral ones, a
 * mean-pooled bag of word embeddings (tokemb_lookup_bags, MEAN), a 2-class output head stored as a
 * second tokemb table (tokemb_logits, the tied-head API), softmax cross-entropy, and fused sparse
 * optimizer steps (tokemb_optim_step on the word table, tokemb_optim_step_coalesced on the head).
 * After training, words of the same class are closer (cosine) than words of different classes. */
#include "demo_sections.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tokemb.h>

enum { N_POS = 6, N_NEG = 6, N_NEUTRAL = 40, VOCAB = N_POS + N_NEG + N_NEUTRAL, DIM = 16, BATCH = 32, MAXLEN = 10 };

static const char *const WORDS[N_POS + N_NEG] = {"good", "great", "superb", "lovely", "fine",   "happy",
                                                 "bad",  "awful", "poor",   "sad",    "boring", "worse"};

static uint64_t xs(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One sentence: 4..MAXLEN words, 1..2 sentiment words of its class at random places, rest neutral.
 * Returns its length; label is 0 (positive) or 1 (negative). */
static int make_sentence(uint64_t *s, int64_t *ids, int *label) {
    int len = 4 + (int)(xs(s) % (MAXLEN - 3));
    *label = (int)(xs(s) % 2);
    for (int i = 0; i < len; i++) ids[i] = N_POS + N_NEG + (int64_t)(xs(s) % N_NEUTRAL);
    int k = 1 + (int)(xs(s) % 2);
    for (int j = 0; j < k; j++) ids[xs(s) % (uint64_t)len] = (*label ? N_POS : 0) + (int64_t)(xs(s) % N_POS);
    return len;
}

static double cosine(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / (sqrt(aa * bb) + 1e-30);
}

/* Mean cosine among sentiment words of the same class and across classes. */
static void class_cosines(const float *E, double *same, double *diff) {
    double s = 0, d = 0;
    int ns = 0, nd = 0;
    for (int i = 0; i < N_POS + N_NEG; i++)
        for (int j = i + 1; j < N_POS + N_NEG; j++) {
            double c = cosine(E + i * DIM, E + j * DIM, DIM);
            if ((i < N_POS) == (j < N_POS)) s += c, ns++;
            else d += c, nd++;
        }
    *same = s / ns;
    *diff = d / nd;
}

#define CHECK(call)                                                                                         \
    do {                                                                                                    \
        int32_t st_ = (call);                                                                               \
        if (st_ != TOKEMB_OK) {                                                                             \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, tokemb_status_string(st_), tokemb_last_error()); \
            rc = st_;                                                                                       \
            goto done;                                                                                      \
        }                                                                                                   \
    } while (0)

int train_classifier_run(int steps, int32_t optim_kind, int verbose, train_result *res) {
    int rc = 0;
    tokemb_table *emb = NULL, *head = NULL;
    int64_t ids[BATCH * MAXLEN], offsets[BATCH + 1];
    int labels[BATCH];
    float pooled[BATCH * DIM], logits[BATCH * 2], glogits[BATCH * 2], gpooled[BATCH * DIM];
    float gtok[BATCH * MAXLEN * DIM], ghead[2 * DIM];
    const int64_t head_ids[2] = {0, 1};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    double loss_first = 0, loss_last = 0;
    memset(res, 0, sizeof *res);

    CHECK(tokemb_table_create(VOCAB, DIM, TOKEMB_F32, &emb));
    CHECK(tokemb_table_init_normal(emb, 42, 0.0, 1.0)); /* = torch.manual_seed(42); nn.Embedding(52, 16) */
    CHECK(tokemb_table_create(2, DIM, TOKEMB_F32, &head));
    CHECK(tokemb_table_init_uniform(head, 7, -0.25, 0.25));
    CHECK(tokemb_optim_select(emb, optim_kind));
    CHECK(tokemb_optim_set_param_f64(emb, TOKEMB_OPTIM_LR, optim_kind == TOKEMB_OPTIM_SGD ? 2.0 : 0.1));
    CHECK(tokemb_optim_select(head, TOKEMB_OPTIM_SGD));
    CHECK(tokemb_optim_set_param_f64(head, TOKEMB_OPTIM_LR, 0.5));
    class_cosines(tokemb_table_data(emb), &res->same_init, &res->diff_init);

    for (int step = 0; step < steps; step++) {
        size_t n = 0;
        offsets[0] = 0;
        for (int b = 0; b < BATCH; b++) {
            n += (size_t)make_sentence(&seed, ids + n, &labels[b]);
            offsets[b + 1] = (int64_t)n;
        }
        /* forward: mean-pooled bag -> logits = pooled x head^T -> softmax cross-entropy */
        CHECK(tokemb_lookup_bags(emb, ids, n, offsets, BATCH, TOKEMB_MEAN, NULL, pooled));
        CHECK(tokemb_logits(head, pooled, BATCH, logits));
        double loss = 0;
        for (int b = 0; b < BATCH; b++) {
            double m = fmax(logits[2 * b], logits[2 * b + 1]);
            double e0 = exp(logits[2 * b] - m), e1 = exp(logits[2 * b + 1] - m), z = e0 + e1;
            loss -= log((labels[b] ? e1 : e0) / z);
            glogits[2 * b] = (float)((e0 / z - (labels[b] == 0)) / BATCH);
            glogits[2 * b + 1] = (float)((e1 / z - (labels[b] == 1)) / BATCH);
        }
        loss /= BATCH;
        if (step < 20) loss_first += loss / 20;
        if (step >= steps - 20) loss_last += loss / 20;
        if (verbose > 0 && (step % verbose == 0 || step == steps - 1)) printf("  step %4d  loss %.4f\n", step, loss);
        /* backward: head (tied-head API) then the bag: each token of bag b gets gpooled[b] / len(b) */
        memset(ghead, 0, sizeof ghead);
        CHECK(tokemb_logits_backward(head, pooled, BATCH, glogits, gpooled, ghead));
        for (int b = 0; b < BATCH; b++) {
            float inv = 1.0f / (float)(offsets[b + 1] - offsets[b]);
            for (int64_t j = offsets[b]; j < offsets[b + 1]; j++)
                for (int c = 0; c < DIM; c++) gtok[j * DIM + c] = gpooled[b * DIM + c] * inv;
        }
        /* fused sparse updates: only the rows this batch used are touched */
        CHECK(tokemb_optim_step(emb, ids, n, gtok));
        CHECK(tokemb_optim_step_coalesced(head, head_ids, 2, ghead));
    }
    res->loss_first = loss_first;
    res->loss_last = loss_last;
    class_cosines(tokemb_table_data(emb), &res->same_final, &res->diff_final);
    res->sep_init = res->same_init - res->diff_init;
    res->sep_final = res->same_final - res->diff_final;
    /* held-out accuracy on fresh sentences */
    {
        int correct = 0, total = 0;
        uint64_t s2 = 12345;
        for (int r = 0; r < 10; r++) {
            size_t n = 0;
            offsets[0] = 0;
            for (int b = 0; b < BATCH; b++) {
                n += (size_t)make_sentence(&s2, ids + n, &labels[b]);
                offsets[b + 1] = (int64_t)n;
            }
            CHECK(tokemb_lookup_bags(emb, ids, n, offsets, BATCH, TOKEMB_MEAN, NULL, pooled));
            CHECK(tokemb_logits(head, pooled, BATCH, logits));
            for (int b = 0; b < BATCH; b++, total++) correct += (logits[2 * b + 1] > logits[2 * b]) == labels[b];
        }
        res->accuracy = (double)correct / total;
    }
done:
    tokemb_table_free(emb);
    tokemb_table_free(head);
    return rc;
}

void demo_training_section(void) {
    train_result r;
    printf("The table is learned: a sentiment classifier trained through tokemb\n");
    printf("  corpus: sentences of %d-%d words; 1-2 of %d sentiment words (e.g. '%s', '%s' vs '%s', '%s')\n", 4, MAXLEN,
           N_POS + N_NEG, WORDS[0], WORDS[1], WORDS[N_POS], WORDS[N_POS + 1]);
    printf("          decide the label, the other words are %d neutral fillers\n", N_NEUTRAL);
    printf("  model:  mean-pooled bag (tokemb_lookup_bags) -> 2-class head (tokemb_logits) -> softmax CE,\n");
    printf("          row-wise Adagrad on the word table (tokemb_optim_step touches only the batch's rows)\n");
    if (train_classifier_run(300, TOKEMB_OPTIM_ROWWISE_ADAGRAD, 100, &r) != 0) return;
    printf("  loss: %.3f (first 20 steps) -> %.3f (last 20), held-out accuracy %.1f%%\n", r.loss_first, r.loss_last,
           100.0 * r.accuracy);
    printf("  mean cosine between sentiment words   same class   different class\n");
    printf("    at initialisation                     %+.3f        %+.3f\n", r.same_init, r.diff_init);
    printf("    after training                        %+.3f        %+.3f\n", r.same_final, r.diff_final);
}
