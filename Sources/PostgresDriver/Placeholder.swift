// module PostgresDriver
