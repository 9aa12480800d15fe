CREATE TABLE `seq_resets` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`peer` text NOT NULL,
	`old_seq` integer NOT NULL,
	`new_seq` integer NOT NULL,
	`by` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `seq_resets_peer` ON `seq_resets` (`kind`,`peer`,`at`);