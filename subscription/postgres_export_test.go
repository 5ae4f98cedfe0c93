package subscription

// Internals that the external tests of the PostgreSQL store check.
var (
	PostgresSchemaVersion = len(postgresMigrations)
	PostgresVersionTable  = postgresVersionTable
)
