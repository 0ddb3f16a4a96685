"""Storage errors.

StorageError            anything the store could not do; the person is asked to try again
 ├── KeyringError          keys missing, malformed, or unable to open stored data
 ├── MigrationError     the database is newer than this code, or a migration failed
 └── Conflict           a turn's write found its report gone or changed meanwhile: nothing
                        was written, and the turn says so instead
"""


class StorageError(Exception):
    pass


class KeyringError(StorageError):
    pass


class MigrationError(StorageError):
    pass


class Conflict(StorageError):
    pass
