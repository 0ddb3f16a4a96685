"""Storage errors.

StorageError            anything the store could not do; the person is asked to try again
 ├── KeyringError          keys missing, malformed, or unable to open stored data
 └── MigrationError     the database is newer than this code, or a migration failed
"""


class StorageError(Exception):
    pass


class KeyringError(StorageError):
    pass


class MigrationError(StorageError):
    pass
