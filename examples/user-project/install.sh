mkdir wine-shop && cd wine-shop
npm init -y
npm pkg set type=module
npm install ../fan-0.1.0.tgz    # made by `npm pack` in fan's folder; a git URL works too
npm install -D typescript@~5.9 @types/node@20 vitest@4
