CREATE TABLE `artifacts` (
	`sha256` text PRIMARY KEY NOT NULL,
	`bytes` integer NOT NULL,
	`kind` text NOT NULL,
	`path` text NOT NULL,
	`produced_by_run_id` text,
	`produced_by_stage_id` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`produced_by_run_id`,`produced_by_stage_id`) REFERENCES `stages`(`run_id`,`stage_id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `artifacts_produced_by_idx` ON `artifacts` (`produced_by_run_id`,`produced_by_stage_id`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`run_id` text NOT NULL,
	`stage_id` text,
	`type` text NOT NULL,
	`payload` text NOT NULL,
	`at` integer NOT NULL,
	`hash` text NOT NULL,
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `events_run_idx` ON `events` (`run_id`,`id`);--> statement-breakpoint
CREATE TABLE `metrics` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`run_id` text NOT NULL,
	`stage_id` text NOT NULL,
	`step` integer,
	`name` text NOT NULL,
	`value` real,
	`protocol_hash` text,
	`recorded_at` integer NOT NULL,
	FOREIGN KEY (`run_id`,`stage_id`) REFERENCES `stages`(`run_id`,`stage_id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `metrics_step_uq` ON `metrics` (`run_id`,`stage_id`,`name`,`step`) WHERE "metrics"."step" IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `metrics_final_uq` ON `metrics` (`run_id`,`stage_id`,`name`) WHERE "metrics"."step" IS NULL;--> statement-breakpoint
CREATE INDEX `metrics_name_idx` ON `metrics` (`name`);--> statement-breakpoint
CREATE TABLE `runs` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`recipe` text NOT NULL,
	`recipe_hash` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`code_version` text NOT NULL,
	`environment` text NOT NULL,
	`parent_run_id` text,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`error` text,
	FOREIGN KEY (`parent_run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `runs_name_created_idx` ON `runs` (`name`,`created_at`);--> statement-breakpoint
CREATE INDEX `runs_status_created_idx` ON `runs` (`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `runs_created_idx` ON `runs` (`created_at`);--> statement-breakpoint
CREATE INDEX `runs_parent_idx` ON `runs` (`parent_run_id`);--> statement-breakpoint
CREATE TABLE `stage_artifacts` (
	`run_id` text NOT NULL,
	`stage_id` text NOT NULL,
	`role` text NOT NULL,
	`sha256` text NOT NULL,
	`step` integer,
	`linked_at` integer NOT NULL,
	PRIMARY KEY(`run_id`, `stage_id`, `role`, `sha256`),
	FOREIGN KEY (`sha256`) REFERENCES `artifacts`(`sha256`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`run_id`,`stage_id`) REFERENCES `stages`(`run_id`,`stage_id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `stage_artifacts_sha256_idx` ON `stage_artifacts` (`sha256`);--> statement-breakpoint
CREATE TABLE `stages` (
	`run_id` text NOT NULL,
	`stage_id` text NOT NULL,
	`kind` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempt` integer DEFAULT 0 NOT NULL,
	`step` integer DEFAULT 0 NOT NULL,
	`steps` integer,
	`config` text NOT NULL,
	`cache_key` text,
	`cache_basis` text,
	`reused_from_run_id` text,
	`reused_from_stage_id` text,
	`reason` text,
	`environment` text,
	`started_at` integer,
	`finished_at` integer,
	`compute_ms` integer,
	`error` text,
	PRIMARY KEY(`run_id`, `stage_id`),
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`reused_from_run_id`,`reused_from_stage_id`) REFERENCES `stages`(`run_id`,`stage_id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `stages_cache_key_idx` ON `stages` (`cache_key`,`status`);--> statement-breakpoint
CREATE INDEX `stages_reused_from_idx` ON `stages` (`reused_from_run_id`,`reused_from_stage_id`);