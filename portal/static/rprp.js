// Initialise GOV.UK Frontend components (error summary focus, radios, skip link, ...).
import { initAll } from './govuk/govuk-frontend.min.js';

initAll();
