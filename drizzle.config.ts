// drizzle-kit configuration: `npx drizzle-kit generate --name <what>` turns changes in
// schemas/tables.ts into a new SQL migration under migrations/. The runtime applies them
// itself (activities/store/db.ts), so no database URL is needed here.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './schemas/tables.ts',
  out: './migrations',
});
