/* Per-table statistics of libtokemb_mpi: bytes sent and the time split of the collective calls
 * (tokemb_mpi_table_stat). Counting costs a few clock reads per call. */
#include "tm_internal.h"

#include <string.h>

_Thread_local double tm_agree_seconds;
_Thread_local int64_t tm_agree_count;

void tm_span_begin(tokemb_mpi_table *t) {
    t->stats.t0 = t->stats.mark = MPI_Wtime();
    t->stats.agree_s0 = tm_agree_seconds;
    t->stats.agree_n0 = tm_agree_count;
    t->stats.open = 1;
}

void tm_span_end(tokemb_mpi_table *t) {
    t->stats.open = 0;
    t->stats.calls++;
    t->stats.sec_total += MPI_Wtime() - t->stats.t0;
    t->stats.sec_agree += tm_agree_seconds - t->stats.agree_s0;
    t->stats.agreements += tm_agree_count - t->stats.agree_n0;
}

int32_t tokemb_mpi_table_stat(const tokemb_mpi_table *t, int32_t stat, double *value) {
    static const char fn[] = "tokemb_mpi_table_stat";
    tm_err[0] = 0;
    if (!t || !value) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t or value is NULL", fn);
    const tm_stats *s = &t->stats;
    double v;
    switch (stat) {
    case TOKEMB_MPI_STAT_CALLS: v = (double)s->calls; break;
    case TOKEMB_MPI_STAT_IDS_SENT: v = (double)s->ids_sent; break;
    case TOKEMB_MPI_STAT_ROWS_SENT: v = (double)s->rows_sent; break;
    case TOKEMB_MPI_STAT_BYTES_SENT:
        v = 8.0 * (double)s->ids_sent + 4.0 * (double)t->local_cols * (double)s->rows_sent;
        break;
    case TOKEMB_MPI_STAT_BYTES_REMOTE: v = (double)s->remote_bytes; break;
    case TOKEMB_MPI_STAT_AGREEMENTS: v = (double)s->agreements; break;
    case TOKEMB_MPI_STAT_SECONDS: v = s->sec_total; break;
    case TOKEMB_MPI_STAT_SECONDS_PLAN: v = s->sec[TM_PH_PLAN]; break;
    case TOKEMB_MPI_STAT_SECONDS_ID_EXCHANGE: v = s->sec[TM_PH_IDS]; break;
    case TOKEMB_MPI_STAT_SECONDS_LOCAL: v = s->sec[TM_PH_LOCAL]; break;
    case TOKEMB_MPI_STAT_SECONDS_ROW_EXCHANGE: v = s->sec[TM_PH_ROWS]; break;
    case TOKEMB_MPI_STAT_SECONDS_OUTPUT: v = s->sec[TM_PH_OUTPUT]; break;
    case TOKEMB_MPI_STAT_SECONDS_AGREE: v = s->sec_agree; break;
    default: return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: unknown stat %d", fn, (int)stat);
    }
    *value = v;
    return TOKEMB_OK;
}

int32_t tokemb_mpi_table_stats_reset(tokemb_mpi_table *t) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "tokemb_mpi_table_stats_reset: t is NULL");
    memset(&t->stats, 0, sizeof t->stats);
    return TOKEMB_OK;
}
