ALTER TABLE `alerts` ADD `flapping` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `rules` ADD `hysteresis` real;--> statement-breakpoint
ALTER TABLE `rules` ADD `min_interval_ms` integer;