"""Secrets a test plants in the environment to prove they never reach a child process."""

#: Secrets a CI job typically holds, under names no deny-list guesses.
LEAKY = {
    "SRC_PW": "src-pw-value",
    "VALKEY_PASS": "valkey-pass-value",
    "DATABASE_URL": "valkey://app:url-pw-value@db:6379",
    "OVH_APPLICATION_SECRET": "ovh-secret-value",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "MY_API": "my-api-value",
}
