// The console's pages, one module per domain. A domain adds its pages by writing
// `pages/<domain>.js` (exporting a list of pages, see app.js) and one line here.

import signIn from "./pages/signin.js";
import ledger from "./pages/ledger.js";
import hours from "./pages/hours.js";
import exports from "./pages/exports.js";
import residents from "./pages/residents.js";
import certificates from "./pages/certificates.js";
import organisations from "./pages/organisations.js";
import care from "./pages/care.js";
import rating from "./pages/rating.js";
import admin from "./pages/admin.js";
import shop from "./pages/shop.js";
import volunteer from "./pages/volunteer.js";
import rules from "./pages/rules.js";

export default [
  signIn, ledger, hours, exports, residents, certificates, organisations, care, rating, admin, shop, volunteer,
  rules,
];
