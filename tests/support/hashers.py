"""The password hasher of the test process.

Django's PBKDF2 costs a million iterations (about 0.3 s of CPU) each time a password is set or
checked, and the suite creates a user with a password in hundreds of tests: minutes of a
`make test` spent on nothing the tests look at. This one is the same algorithm under the same
name with far fewer iterations, so a hash made here is still a valid ``pbkdf2_sha256`` hash for
any process with the default settings (a gunicorn or a worker of the suite reads the iteration
count from the hash itself, and merely upgrades it on a successful login).
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
