/*
 * test_metrics.c - the Prometheus registry of server/metrics.c without a
 * server: number formatting as prometheus_client writes it, label escaping,
 * vLLM's bucket boundaries, cumulative buckets with +Inf == _count, and
 * thread-safe observation from many threads.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "testutil.h"

static char *render(glm_metrics *m, const char *name)
{
    glm_engine_metrics es = {0};
    es.kv_blocks_total = 4;
    es.kv_blocks_used = 1;
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    glm_metrics_render(m, &es, name, f);
    fclose(f);
    return s;
}

START_TEST(format_numbers)
{
    static const struct {
        double v;
        const char *s;
    } cases[] = {{1, "1.0"}, {0.25, "0.25"}, {0.001, "0.001"}, {2560, "2560.0"}, {200000, "200000.0"},
                 {1e6, "1e+06"}, {1234567.5, "1.2345675e+06"}, {0.1 + 0.2, "0.30000000000000004"},
                 {1.0 / 0.0, "+Inf"}, {0, "0.0"}, {1e-05, "1e-05"}};
    char out[48];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        glm_metrics_format_number(cases[i].v, out, sizeof out);
        ck_assert_str_eq(out, cases[i].s);
    }
}
END_TEST

START_TEST(escape_labels)
{
    char *e = glm_metrics_escape_label("a\"b\\c\nd");
    ck_assert_str_eq(e, "a\\\"b\\\\c\\nd");
    free(e);
    glm_metrics *m = glm_metrics_create(100);
    char *s = render(m, "we\"ird\\name\n");
    ck_assert_ptr_nonnull(strstr(s, "glm:kv_cache_usage_perc{engine=\"0\",model_name=\"we\\\"ird\\\\name\\n\"} 0.25\n"));
    free(s);
    glm_metrics_free(m);
}
END_TEST

START_TEST(histogram_consistency)
{
    glm_metrics *m = glm_metrics_create(1000);
    glm_event ev = {0};
    ev.type = GLM_EV_FINISH;
    ev.prompt_tokens = 10;
    ev.completion_tokens = 5;
    ev.ttft = 0.005; /* exactly on a bound: counted in le="0.005" */
    ev.e2e_time = 2.0;
    ev.queue_time = 0.1;
    ev.prefill_time = 0.2;
    ev.decode_time = 1.7;
    glm_metrics_observe_finish(m, &ev, GLM_FINISH_LENGTH);
    ev.completion_tokens = 0; /* never produced a token: no TTFT */
    glm_metrics_observe_finish(m, &ev, GLM_FINISH_ABORT);
    glm_metrics_observe_itl(m, 0.02);
    char *s = render(m, "tiny");
    ck_assert_ptr_nonnull(strstr(s, "glm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.001\",model_name=\"tiny\"} 0.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.005\",model_name=\"tiny\"} 1.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"tiny\"} 1.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"1.5\",model_name=\"tiny\"} 0.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"2.0\",model_name=\"tiny\"} 2.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"7680.0\",model_name=\"tiny\"} 2.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"tiny\"} 2.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"tiny\"} 4.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:request_prompt_tokens_bucket{engine=\"0\",le=\"1000.0\",model_name=\"tiny\"} 2.0\n"));
    ck_assert_ptr_null(strstr(s, "le=\"2000.0\""));
    ck_assert_ptr_nonnull(strstr(s, "glm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"tiny\"} 1.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:request_success_total{engine=\"0\",finished_reason=\"abort\",model_name=\"tiny\"} 1.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"0.025\",model_name=\"tiny\"} 1.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "# TYPE glm:request_success_total counter\n"));
    free(s);
    glm_metrics_free(m);
}
END_TEST

static glm_metrics *shared;
static void *observer(void *arg)
{
    for (int i = 0; i < 20000; i++)
        glm_metrics_observe_itl(shared, 0.001 * (i % 100));
    return arg;
}

START_TEST(concurrent_observers)
{
    shared = glm_metrics_create(100);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, observer, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    char *s = render(shared, "x");
    ck_assert_ptr_nonnull(strstr(s, "glm:inter_token_latency_seconds_count{engine=\"0\",model_name=\"x\"} 160000.0\n"));
    ck_assert_ptr_nonnull(strstr(s, "glm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"x\"} 160000.0\n"));
    free(s);
    glm_metrics_free(shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, format_numbers);
    tcase_add_test(tc, escape_labels);
    tcase_add_test(tc, histogram_consistency);
    tcase_add_test(tc, concurrent_observers);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
