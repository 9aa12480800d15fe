CREATE TABLE `minute_packs` (
	`series` integer NOT NULL,
	`hour` integer NOT NULL,
	`buckets` integer NOT NULL,
	`data` blob NOT NULL,
	PRIMARY KEY(`series`, `hour`)
) WITHOUT ROWID;
