package subscription

// Internals that the external tests of the SQLite store check.
var (
	SQLiteSchemaVersion = len(sqliteMigrations)
	// SQLiteMigration1 is the first shipped schema, to build a database as
	// an older release left it.
	SQLiteMigration1 = sqliteMigrations[0]
)
