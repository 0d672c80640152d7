package saver_test

const crashHelperEnv = "IMGATE_SAVER_CRASH_DB"
