/* tm_optim.c - what a shard's optimizer is, read through the public API (which has no kind getter):
 * the collective steps compare it across the ranks before anything moves. */
#include "tm_internal.h"

int32_t tm_optim_kind(const tokemb_table *shard) {
    double v;
    if (tokemb_optim_step_count(shard) < 0) return -1;
    /* each kind accepts a different set of hyper-parameters (tokemb_optim_set_param_f64) */
    if (tokemb_optim_get_param_f64(shard, TOKEMB_OPTIM_BETA1, &v) == TOKEMB_OK) return TOKEMB_OPTIM_SPARSE_ADAM;
    if (tokemb_optim_get_param_f64(shard, TOKEMB_OPTIM_LR_DECAY, &v) == TOKEMB_OK) return TOKEMB_OPTIM_ADAGRAD;
    if (tokemb_optim_get_param_f64(shard, TOKEMB_OPTIM_EPS, &v) == TOKEMB_OK) return TOKEMB_OPTIM_ROWWISE_ADAGRAD;
    return TOKEMB_OPTIM_SGD;
}

void tm_optim_meta(const tokemb_table *shard, double meta[TM_OPTIM_META]) {
    meta[0] = (double)tokemb_optim_step_count(shard);
    meta[1] = (double)tm_optim_kind(shard);
    for (int k = 0; k < TM_OPTIM_META - 2; k++) { /* a parameter the kind does not use stays 0 */
        meta[2 + k] = 0.0;
        tokemb_optim_get_param_f64(shard, TOKEMB_OPTIM_LR + k, &meta[2 + k]);
    }
}
