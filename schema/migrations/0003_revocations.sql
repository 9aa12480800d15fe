CREATE TABLE `revocations` (
	`kind` text NOT NULL,
	`id` text NOT NULL,
	`revoked_at` integer NOT NULL,
	PRIMARY KEY(`kind`, `id`)
);
