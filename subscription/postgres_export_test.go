package subscription

// Internals that the external tests of the PostgreSQL store check.
var (
	PostgresSchemaVersion = len(postgresMigrations)
	PostgresVersionTable  = postgresVersionTable
	// PostgresMigration1 is the first shipped schema, to build a database
	// as an older release left it.
	PostgresMigration1 = postgresMigrations[0]
)
