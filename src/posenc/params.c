/* params.c - tokemb_posenc_set_param / _get_param (int64 and double): the typed front door to the parameters
 * each family owns (tk_pe_family, defined in the family's file). The only file that lists the families with
 * parameters, so that an error can name the family a parameter belongs to; it knows none of their parameters. */
#include "posenc/posenc.h"

#include <math.h>

static const tk_pe_family *const tk_pe_families[] = {&tk_pe_rope, &tk_pe_alibi};

static int tk_param_type(const tk_pe_family *f, int32_t param) {
    return f->param_type ? f->param_type(param) : TK_PE_PARAM_NONE;
}

/* TOKEMB_OK when param is a parameter of pe's family of type `want`; else the error. */
static int32_t tk_param_check(const char *fn, const tokemb_posenc *pe, int32_t param, int want, const char *other) {
    if (!pe) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: encoder is NULL", fn);
    const int type = tk_param_type(pe->family, param);
    if (type == TK_PE_PARAM_NONE) {
        for (size_t k = 0; k < sizeof tk_pe_families / sizeof tk_pe_families[0]; k++)
            if (tk_param_type(tk_pe_families[k], param) != TK_PE_PARAM_NONE)
                return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d belongs to %s encoders, this one is %s", fn,
                                (int)param, tk_pe_families[k]->name, pe->family->name);
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown parameter %d", fn, (int)param);
    }
    if (type != want)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d is %s (use %s)", fn, (int)param,
                        type == TK_PE_PARAM_F64 ? "a double" : "an integer", other);
    return TOKEMB_OK;
}

int32_t tokemb_posenc_set_param(tokemb_posenc *pe, int32_t param, int64_t value) {
    static const char fn[] = "tokemb_posenc_set_param";
    int32_t st = tk_param_check(fn, pe, param, TK_PE_PARAM_I64, "_set_param_f64");
    if (st) return st;
    return pe->family->set_i64(fn, pe, param, value);
}

int32_t tokemb_posenc_set_param_f64(tokemb_posenc *pe, int32_t param, double value) {
    static const char fn[] = "tokemb_posenc_set_param_f64";
    int32_t st = tk_param_check(fn, pe, param, TK_PE_PARAM_F64, "_set_param");
    if (st) return st;
    if (!isfinite(value))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d = %g is not finite", fn, (int)param, value);
    return pe->family->set_f64(fn, pe, param, value);
}

int32_t tokemb_posenc_get_param(const tokemb_posenc *pe, int32_t param, int64_t *value) {
    static const char fn[] = "tokemb_posenc_get_param";
    int32_t st = tk_param_check(fn, pe, param, TK_PE_PARAM_I64, "_get_param_f64");
    if (st) return st;
    if (!value) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: value is NULL", fn);
    *value = pe->family->get_i64(pe, param);
    return TOKEMB_OK;
}

int32_t tokemb_posenc_get_param_f64(const tokemb_posenc *pe, int32_t param, double *value) {
    static const char fn[] = "tokemb_posenc_get_param_f64";
    int32_t st = tk_param_check(fn, pe, param, TK_PE_PARAM_F64, "_get_param");
    if (st) return st;
    if (!value) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: value is NULL", fn);
    *value = pe->family->get_f64(pe, param);
    return TOKEMB_OK;
}
