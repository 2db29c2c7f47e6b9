// The PostgreSQL schema the run records need: the SQL migration files
// beside this module's queries (Migrations/NNNN_name.sql, applied in order
// by PostgresDriver's Migrator).
import Foundation

extension RunRecords {
    /// The folder of migration files shipped with this module.
    public static var migrationsDirectory: URL? {
        Bundle.module.url(forResource: "Migrations", withExtension: nil)
    }
}
