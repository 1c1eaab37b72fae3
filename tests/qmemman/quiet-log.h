/* quiet-log.h: the qmemman tests' log, silenced. The balancer's decision
 * lines on a test's stdout would mix with its TAP; what a test checks it
 * reads from the state. Errors still abort. */
#pragma once

#include <glib.h>

static void qm_test_drop_log(const char *domain, GLogLevelFlags level,
                             const char *msg, gpointer data)
{
}

static inline void qm_test_quiet_log(void)
{
    g_log_set_always_fatal(G_LOG_LEVEL_ERROR);
    g_log_set_handler("qmemman",
                      G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
                          G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_WARNING |
                          G_LOG_LEVEL_CRITICAL,
                      qm_test_drop_log, NULL);
}
